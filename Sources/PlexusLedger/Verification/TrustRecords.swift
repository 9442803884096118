import PlexusCore

/// A registered verifier. Its stake is the account's one stake, which may
/// secure a node as well (each role's minimum is checked against it).
public struct VerifierRecord: Sendable, Hashable, Codable, CanonicalCodable {
    public var account: Address
    public var registeredHeight: UInt64

    public init(account: Address, registeredHeight: UInt64) {
        self.account = account
        self.registeredHeight = registeredHeight
    }

    public func encode(to w: inout CanonicalWriter) { w.write(account); w.write(registeredHeight) }
    public init(from r: inout CanonicalReader) throws {
        account = try r.readAddress()
        registeredHeight = try r.readUInt64()
    }
}

/// An account's standing as a node operator and a verifier: a reputation that
/// cannot be moved, decaying toward neutral; a jail term; counts.
public struct Standing: Sendable, Hashable, Codable, CanonicalCodable {
    /// Reputation scale: 0 (the floor) to `Standing.maximum`; everyone starts at `neutral`.
    public static let neutral: UInt64 = 500_000
    public static let maximum: UInt64 = 1_000_000
    /// Points for a check passed (node) or a verdict with evidence (verifier).
    public static let passGain: UInt64 = 5_000
    /// Points for a request paid out.
    public static let servedGain: UInt64 = 500
    /// Points lost for a missed verdict deadline or an unrevealed vote.
    public static let missPenalty: UInt64 = 50_000
    /// Points lost for a vote against the majority, a false failure or bad evidence.
    public static let faultPenalty: UInt64 = 100_000

    /// The reputation as of `asOf`.
    public var score: UInt64 = Standing.neutral
    public var asOf: UInt64 = 0
    /// No traffic, verdicts or unstaking before this height.
    public var jailedUntil: UInt64 = 0
    /// Requests this account's node settled (the first ones are all checked).
    public var served: UInt64 = 0
    /// Input and output tokens its node's settled shares counted.
    public var servedTokens: UInt64 = 0
    /// Disputes open against this account's node: its releases wait for them.
    public var openDisputes: UInt32 = 0
    /// As a verifier: verdicts posted, deadlines missed, faults.
    public var verdicts: UInt64 = 0
    public var misses: UInt64 = 0
    public var faults: UInt64 = 0
    /// As a node: checks passed and frauds upheld.
    public var passes: UInt64 = 0
    public var frauds: UInt64 = 0

    public init() {}

    /// The reputation at `height`: the distance to neutral halves every `halfLife` blocks.
    public func reputation(at height: UInt64, halfLife: UInt64) -> UInt64 {
        let periods = height > asOf ? (height - asOf) / max(1, halfLife) : 0
        guard periods < 64 else { return Self.neutral }
        return score >= Self.neutral ? Self.neutral + ((score - Self.neutral) >> periods) : Self.neutral - ((Self.neutral - score) >> periods)
    }

    /// Moves the reputation by `delta` points from its decayed value at `height`, within the scale.
    mutating func adjust(by delta: Int64, at height: UInt64, halfLife: UInt64) {
        let now = reputation(at: height, halfLife: halfLife)
        score = delta >= 0 ? min(Self.maximum, now &+ UInt64(delta)) : now - min(now, UInt64(-delta))
        asOf = height
    }

    public func isJailed(at height: UInt64) -> Bool { height < jailedUntil }

    public func encode(to w: inout CanonicalWriter) {
        w.write(score); w.write(asOf); w.write(jailedUntil); w.write(served); w.write(openDisputes)
        w.write(verdicts); w.write(misses); w.write(faults); w.write(passes); w.write(frauds)
        w.write(servedTokens)
    }

    public init(from r: inout CanonicalReader) throws {
        score = try r.readUInt64(); asOf = try r.readUInt64(); jailedUntil = try r.readUInt64(); served = try r.readUInt64()
        openDisputes = try r.readUInt32()
        verdicts = try r.readUInt64(); misses = try r.readUInt64(); faults = try r.readUInt64()
        passes = try r.readUInt64(); frauds = try r.readUInt64()
        // Records written before tokens were counted end here.
        servedTokens = r.remaining >= 8 ? try r.readUInt64() : 0
        guard score <= Self.maximum else { throw PlexusError(.malformed, "reputation \(score) is above the scale") }
    }
}

/// One share's commitment as its receipt carried it.
public struct ShareCommitment: Sendable, Hashable, Codable, CanonicalCodable {
    public var root: Hash256
    public var chunks: UInt32

    public init(root: Hash256, chunks: UInt32) {
        self.root = root
        self.chunks = chunks
    }

    public func encode(to w: inout CanonicalWriter) { w.write(root); w.write(chunks) }
    public init(from r: inout CanonicalReader) throws {
        root = try r.readHash()
        chunks = try r.readUInt32()
    }
}

/// What only a re-execution produces: the hash of a share's last chunk of hidden
/// states (it depends, through attention, on every position before it) with its
/// Merkle path to the root the node signed. The ledger checks it without a model.
public struct ChunkEvidence: Sendable, Hashable, Codable, CanonicalCodable {
    public var chunk: Hash256
    public var path: [Hash256]

    public init(chunk: Hash256, path: [Hash256]) {
        self.chunk = chunk
        self.path = path
    }

    /// Deepest path accepted (2^32 chunks).
    public static let maxPath = 32

    public func encode(to w: inout CanonicalWriter) { w.write(chunk); w.write(array: path) }
    public init(from r: inout CanonicalReader) throws {
        chunk = try r.readHash()
        path = try r.readArray(of: Hash256.self, limit: Self.maxPath)
    }

    /// Whether this is the last chunk of `share` under its root.
    public func proves(_ share: ShareCommitment) -> Bool {
        share.chunks > 0 && MerkleRoot.verify(leaf: chunk, index: UInt64(share.chunks - 1), count: UInt64(share.chunks), path: path, root: share.root)
    }
}

/// A settled request's spot check: drawn by lot from the hash of the block that
/// sealed its settlement, so neither node nor gateway knew at serving time.
public struct Check: Sendable, Hashable, Codable, CanonicalCodable {
    public enum State: UInt8, Sendable, Codable {
        /// Waiting for the block after its settlement.
        case undrawn = 0
        /// The lot did not select it.
        case skipped = 1
        /// Selected; waiting for the assigned verifier's verdict.
        case assigned = 2
        /// Selected, but no verifier could be assigned.
        case unassigned = 3
        /// The verifier re-executed it and it matched (with evidence).
        case passed = 4
        /// The verifier found a mismatch; a dispute decides.
        case failed = 5
        /// The verifier missed its deadline.
        case missed = 6
        /// The verifier posted a pass whose evidence does not prove out.
        case faulted = 7

        public var name: String {
            switch self {
            case .undrawn: "undrawn"
            case .skipped: "skipped"
            case .assigned: "assigned"
            case .unassigned: "unassigned"
            case .passed: "passed"
            case .failed: "failed"
            case .missed: "missed"
            case .faulted: "faulted"
            }
        }
    }

    public var requestId: Hash256
    public var shares: [ShareCommitment]
    public var settledHeight: UInt64
    public var state: State
    /// The sample rate the draw used and the value it drew (both in basis points).
    public var rateBps: UInt16 = 0
    public var drawn: UInt16 = 0
    public var verifier: Address?
    /// Verdicts are accepted below this height.
    public var deadline: UInt64 = 0

    public init(requestId: Hash256, shares: [ShareCommitment], settledHeight: UInt64) {
        self.requestId = requestId
        self.shares = shares
        self.settledHeight = settledHeight
        self.state = .undrawn
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(requestId); w.write(array: shares); w.write(settledHeight); w.write(state.rawValue)
        w.write(rateBps); w.write(drawn); w.write(optional: verifier); w.write(deadline)
    }

    public init(from r: inout CanonicalReader) throws {
        requestId = try r.readHash()
        shares = try r.readArray(of: ShareCommitment.self, limit: Registry.maxParts)
        settledHeight = try r.readUInt64()
        guard let s = State(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown check state") }
        state = s
        rateBps = try r.readUInt16()
        drawn = try r.readUInt16()
        verifier = try r.readOptional(Address.self)
        deadline = try r.readUInt64()
    }
}

/// A challenge of one share of a settled request, decided by a committee drawn
/// by lot that commits sealed votes and then reveals them.
public struct Dispute: Sendable, Hashable, Codable, CanonicalCodable {
    public enum Outcome: UInt8, Sendable, Codable {
        case open = 0
        /// Fraud upheld: the node slashed and jailed, the requestor refunded.
        case upheld = 1
        /// The majority found the work honest: the bond goes to node and committee.
        case rejected = 2
        /// No committee could be drawn, or nobody revealed: the bond goes back.
        case dismissed = 3

        public var name: String {
            switch self {
            case .open: "open"
            case .upheld: "upheld"
            case .rejected: "rejected"
            case .dismissed: "dismissed"
            }
        }
    }

    /// One committee member's sealed and revealed vote.
    public struct Seat: Sendable, Hashable, Codable, CanonicalCodable {
        public var member: Address
        public var commit: Hash256?
        /// After the reveal: true = fraud.
        public var fraud: Bool?

        public init(member: Address) { self.member = member }

        public func encode(to w: inout CanonicalWriter) {
            w.write(member); w.write(optional: commit)
            w.write(UInt8(fraud == nil ? 0 : fraud == true ? 2 : 1))
        }

        public init(from r: inout CanonicalReader) throws {
            member = try r.readAddress()
            commit = try r.readOptional(Hash256.self)
            switch try r.readUInt8() {
            case 0: fraud = nil
            case 1: fraud = false
            case 2: fraud = true
            case let v: throw PlexusError(.malformed, "vote byte \(v)")
            }
        }
    }

    public var requestId: Hash256
    /// Which share (receipt) of the request is challenged.
    public var share: UInt8
    /// The operator whose node served that share.
    public var accused: Address
    public var challenger: Address
    public var bond: Amount
    public var openedHeight: UInt64
    /// The committee is drawn at the start of this block (from the hash of the
    /// block holding the challenge); commits below `revealHeight`, reveals below `resolveHeight`.
    public var drawHeight: UInt64
    public var revealHeight: UInt64
    public var resolveHeight: UInt64
    public var seats: [Seat] = []
    public var outcome: Outcome = .open
    /// The slash taken when fraud was upheld.
    public var slashed: Amount = .zero

    public init(requestId: Hash256, share: UInt8, accused: Address, challenger: Address, bond: Amount, openedHeight: UInt64,
                drawHeight: UInt64, revealHeight: UInt64, resolveHeight: UInt64) {
        self.requestId = requestId
        self.share = share
        self.accused = accused
        self.challenger = challenger
        self.bond = bond
        self.openedHeight = openedHeight
        self.drawHeight = drawHeight
        self.revealHeight = revealHeight
        self.resolveHeight = resolveHeight
    }

    /// What a member commits to: the hash of its vote, a salt it keeps, and who it is.
    public static func voteCommitment(requestId: Hash256, member: Address, fraud: Bool, salt: Hash256) -> Hash256 {
        var w = CanonicalWriter(capacity: 128)
        w.write(fixed: Array("plexus-vote-v1".utf8))
        w.write(requestId); w.write(member); w.write(fraud); w.write(salt)
        return Hash256.of(w.bytes)
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(requestId); w.write(share); w.write(accused); w.write(challenger); w.write(bond)
        w.write(openedHeight); w.write(drawHeight); w.write(revealHeight); w.write(resolveHeight)
        w.write(array: seats); w.write(outcome.rawValue); w.write(slashed)
    }

    public init(from r: inout CanonicalReader) throws {
        requestId = try r.readHash()
        share = try r.readUInt8()
        accused = try r.readAddress()
        challenger = try r.readAddress()
        bond = try r.readAmount()
        openedHeight = try r.readUInt64(); drawHeight = try r.readUInt64()
        revealHeight = try r.readUInt64(); resolveHeight = try r.readUInt64()
        seats = try r.readArray(of: Seat.self, limit: 15)
        guard let o = Outcome(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown dispute outcome") }
        outcome = o
        slashed = try r.readAmount()
    }
}
