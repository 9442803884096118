import PlexusCore

/// Limits and names shared by the governance rules.
public enum Governance {
    /// The community every account belongs to: the network itself. Its
    /// settings are the protocol parameters.
    public static let root = "plexus"
    /// The federation assembly's pseudo-community (representatives vote).
    public static let federation = "federation"
    public static let maxCommunitiesPerProposal = 8
    public static let maxActions = 16
    public static let maxTitle = 200
    public static let maxDescription = 4_000
    /// Most communities one account may belong to.
    public static let maxMemberships = 32

    /// A community's own settings, by the names of the protocol parameters
    /// whose bounds they share.
    public static let communitySettings: [Params.Key] = [
        .votingDelayBlocks, .votingPeriodBlocks, .quorumBps, .proposalThreshold,
        .councilSize, .councilApprovals, .councilEpochBlocks,
    ]
}

/// A self-governing community: members, its own settings and voting scheme.
public struct Community: Sendable, Hashable, CanonicalCodable {
    public var id: String
    public var scheme: VotingScheme
    /// Anyone may join; otherwise a member must admit each applicant.
    public var open: Bool
    /// Values of `Governance.communitySettings`, in that order.
    public var settings: [UInt64]
    public var founder: Address
    public var createdHeight: UInt64
    /// The community this one forked from, if any.
    public var forkedFrom: String?
    /// Members now.
    public var memberCount: UInt64 = 0
    /// Council terms (elected or drawn): who sits from which height.
    public var councils: [CouncilTerm] = []
    /// A sortition draw announced and due at this height.
    public var pendingDraw: UInt64?
    /// Executed proposals that named this community (kept by forks).
    public var history: [Hash256] = []

    public init(id: String, scheme: VotingScheme, open: Bool, settings: [UInt64], founder: Address, createdHeight: UInt64) {
        self.id = id; self.scheme = scheme; self.open = open; self.settings = settings; self.founder = founder; self.createdHeight = createdHeight
    }

    public func setting(_ key: Params.Key) -> UInt64 {
        guard let i = Governance.communitySettings.firstIndex(of: key) else { return Params.specs[key.rawValue].defaultValue }
        return settings[i]
    }

    /// The council sitting at the end of the block before `height`.
    public func council(before height: UInt64) -> [Address] {
        councils.last(where: { $0.fromHeight < height })?.members ?? []
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(scheme.rawValue); w.write(open)
        w.write(UInt32(settings.count)); for s in settings { w.write(s) }
        w.write(founder); w.write(createdHeight)
        w.write(forkedFrom != nil); w.write(forkedFrom ?? "")
        w.write(memberCount); w.write(array: councils)
        w.write(pendingDraw != nil); w.write(pendingDraw ?? 0)
        w.write(array: history)
    }

    public init(from r: inout CanonicalReader) throws {
        id = try r.readString(limit: Registry.maxName)
        guard let s = VotingScheme(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown voting scheme") }
        scheme = s
        open = try r.readBool()
        let n = Int(try r.readUInt32())
        guard n == Governance.communitySettings.count else { throw PlexusError(.malformed, "community has \(n) settings") }
        settings = try (0..<n).map { _ in try r.readUInt64() }
        founder = try r.readAddress(); createdHeight = try r.readUInt64()
        let forked = try r.readBool(); let parent = try r.readString(limit: Registry.maxName)
        forkedFrom = forked ? parent : nil
        memberCount = try r.readUInt64()
        councils = try r.readArray(of: CouncilTerm.self, limit: 1_000_000)
        let pending = try r.readBool(); let at = try r.readUInt64()
        pendingDraw = pending ? at : nil
        history = try r.readArray(of: Hash256.self, limit: 10_000_000)
    }
}

/// Who sits on a council (or the assembly) from a height on.
public struct CouncilTerm: Sendable, Hashable, Codable, CanonicalCodable {
    public var fromHeight: UInt64
    public var members: [Address]

    public init(fromHeight: UInt64, members: [Address]) { self.fromHeight = fromHeight; self.members = members }

    public func encode(to w: inout CanonicalWriter) { w.write(fromHeight); w.write(array: members) }
    public init(from r: inout CanonicalReader) throws {
        fromHeight = try r.readUInt64(); members = try r.readArray(of: Address.self, limit: 100_000)
    }
}

/// One account's membership of one community: 1 while a member, 0 after
/// leaving, by height; and whether an application waits for admission.
public struct Membership: Sendable, Hashable, CanonicalCodable {
    public var history = Checkpoints()
    public var applied = false
    /// For a fork's members: may join without admission.
    public var isMember: Bool { history.latest == 1 }

    public init() {}
    public func encode(to w: inout CanonicalWriter) { w.write(history); w.write(applied) }
    public init(from r: inout CanonicalReader) throws { history = try Checkpoints(from: &r); applied = try r.readBool() }
}

/// An account's governance record: its delegate and the histories that
/// voting power at a snapshot is read from.
public struct VoterRecord: Sendable, Hashable, CanonicalCodable {
    /// Who votes with this account's stake (nil: itself).
    public var delegate: Address?
    /// Stake delegated to this account (including its own, unless delegated away).
    public var votes = Checkpoints()
    /// This account's own stake.
    public var stake = Checkpoints()
    /// Reputation points (earned, never transferable).
    public var reputation = Checkpoints()
    /// Communities this account belongs to.
    public var communities: [String] = []

    public init() {}

    public func encode(to w: inout CanonicalWriter) {
        w.write(delegate != nil); w.write(delegate ?? .treasury)
        w.write(votes); w.write(stake); w.write(reputation)
        w.write(UInt32(communities.count)); for c in communities { w.write(c) }
    }

    public init(from r: inout CanonicalReader) throws {
        let has = try r.readBool(); let d = try r.readAddress()
        delegate = has ? d : nil
        votes = try Checkpoints(from: &r); stake = try Checkpoints(from: &r); reputation = try Checkpoints(from: &r)
        let n = Int(try r.readUInt32())
        guard n <= Governance.maxMemberships else { throw PlexusError(.tooLarge, "too many memberships") }
        communities = try (0..<n).map { _ in try r.readString(limit: Registry.maxName) }
    }
}

/// Network-wide governance totals and the federation.
public struct GovernanceTotals: Sendable, Hashable, CanonicalCodable {
    /// All stake, by height (the token scheme's total power).
    public var stake = Checkpoints()
    /// All reputation points, by height.
    public var reputation = Checkpoints()
    /// Communities in the federation (sorted).
    public var federation: [String] = []
    /// Assembly terms: the representatives from a height on.
    public var assembly: [CouncilTerm] = []
    /// Seats per federated community in the current term (same order as `federation` at the draw).
    public var seats: [UInt64] = []
    /// A draw announced and due at this height.
    public var pendingDraw: UInt64?
    /// The current term ends at this height (a new draw is announced then).
    public var termEnd: UInt64 = 0

    public init() {}

    public func encode(to w: inout CanonicalWriter) {
        w.write(stake); w.write(reputation)
        w.write(UInt32(federation.count)); for c in federation { w.write(c) }
        w.write(array: assembly)
        w.write(UInt32(seats.count)); for s in seats { w.write(s) }
        w.write(pendingDraw != nil); w.write(pendingDraw ?? 0); w.write(termEnd)
    }

    public init(from r: inout CanonicalReader) throws {
        stake = try Checkpoints(from: &r); reputation = try Checkpoints(from: &r)
        let n = Int(try r.readUInt32())
        guard n <= 100_000 else { throw PlexusError(.tooLarge, "federation too large") }
        federation = try (0..<n).map { _ in try r.readString(limit: Registry.maxName) }
        assembly = try r.readArray(of: CouncilTerm.self, limit: 1_000_000)
        let m = Int(try r.readUInt32())
        guard m <= 100_000 else { throw PlexusError(.tooLarge, "seat table too large") }
        seats = try (0..<m).map { _ in try r.readUInt64() }
        let has = try r.readBool(); let at = try r.readUInt64()
        pendingDraw = has ? at : nil
        termEnd = try r.readUInt64()
    }
}
