import PlexusCore

/// How a community counts votes.
public enum VotingScheme: UInt8, CaseIterable, Sendable, Codable {
    /// Staked tokens, with checkpoints and delegation.
    case token = 1
    /// Snapshot's quadratic formula over members' stake.
    case quadratic = 2
    /// Non-transferable reputation points.
    case reputation = 3
    /// One member, one vote.
    case member = 4
    /// A council elected each epoch by stake-weighted approval (DPoS).
    case council = 5
    /// A council drawn by lot each epoch from the members.
    case sortition = 6
    /// The federation assembly (the federation's own scheme only).
    case assembly = 7

    public var name: String { String(describing: self) }

    public init(name: String) throws {
        guard let s = Self.allCases.first(where: { $0.name == name }) else {
            throw PlexusError(.malformed, "voting scheme is one of \(Self.allCases.map(\.name).joined(separator: ", ")) (got '\(name.prefix(32))')")
        }
        self = s
    }

    public init(from decoder: any Decoder) throws { self = try Self(name: decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

/// One effect of a proposal, applied when it executes.
public enum ProposalAction: Sendable, Hashable {
    /// Sets a protocol parameter (bounds checked when proposed and executed).
    case setParam(name: String, value: UInt64)
    /// Sets one of a community's own governance settings.
    case setCommunityParam(community: String, name: String, value: UInt64)
    /// Changes a community's voting scheme.
    case setScheme(community: String, scheme: VotingScheme)
    /// Opens a community to anyone or makes joining need a member's approval.
    case setOpen(community: String, open: Bool)
    /// Lists a registered model (nodes may offer listed models only once `modelListing` is 1).
    case listModel(String)
    /// Removes a model from the list.
    case delistModel(String)
    /// Pays `amount` from the treasury.
    case treasurySpend(to: Address, amount: Amount)
    /// Awards reputation points.
    case grantReputation(account: Address, points: UInt64)
    /// Adds a community to the federation.
    case federationJoin(String)
    /// Removes a community from the federation.
    case federationLeave(String)
    /// Stops sales of a dataset (a licence violation), or resumes them.
    case delistDataset(Hash256)
    case relistDataset(Hash256)

    public var kind: String {
        switch self {
        case .setParam: "set_param"
        case .setCommunityParam: "set_community_param"
        case .setScheme: "set_scheme"
        case .setOpen: "set_open"
        case .listModel: "list_model"
        case .delistModel: "delist_model"
        case .treasurySpend: "treasury_spend"
        case .grantReputation: "grant_reputation"
        case .federationJoin: "federation_join"
        case .federationLeave: "federation_leave"
        case .delistDataset: "delist_dataset"
        case .relistDataset: "relist_dataset"
        }
    }

    /// The communities whose approval this action needs (distributed veto):
    /// protocol-wide effects need the root community, a community's own
    /// settings need that community, federation membership needs both.
    public var touches: [String] {
        switch self {
        case .setParam, .listModel, .delistModel, .treasurySpend, .grantReputation, .delistDataset, .relistDataset: [Governance.root]
        case let .setCommunityParam(c, _, _), let .setScheme(c, _), let .setOpen(c, _): [c]
        case let .federationJoin(c), let .federationLeave(c): [c, Governance.root]
        }
    }
}

extension ProposalAction: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .setParam(n, v): "set_param \(n) = \(v)"
        case let .setCommunityParam(c, n, v): "set_community_param \(c): \(n) = \(v)"
        case let .setScheme(c, s): "set_scheme \(c): \(s.name)"
        case let .setOpen(c, o): "set_open \(c): \(o ? "open" : "by approval")"
        case let .listModel(m): "list_model \(m)"
        case let .delistModel(m): "delist_model \(m)"
        case let .treasurySpend(to, a): "treasury_spend \(a) PLX to \(to)"
        case let .grantReputation(a, p): "grant_reputation \(p) points to \(a)"
        case let .federationJoin(c): "federation_join \(c)"
        case let .federationLeave(c): "federation_leave \(c)"
        case let .delistDataset(d): "delist_dataset \(d.hex)"
        case let .relistDataset(d): "relist_dataset \(d.hex)"
        }
    }
}

extension ProposalAction: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .setParam(n, v): w.write(UInt8(1)); w.write(n); w.write(v)
        case let .setCommunityParam(c, n, v): w.write(UInt8(2)); w.write(c); w.write(n); w.write(v)
        case let .setScheme(c, s): w.write(UInt8(3)); w.write(c); w.write(s.rawValue)
        case let .setOpen(c, o): w.write(UInt8(4)); w.write(c); w.write(o)
        case let .listModel(m): w.write(UInt8(5)); w.write(m)
        case let .delistModel(m): w.write(UInt8(6)); w.write(m)
        case let .treasurySpend(to, a): w.write(UInt8(7)); w.write(to); w.write(a)
        case let .grantReputation(a, p): w.write(UInt8(8)); w.write(a); w.write(p)
        case let .federationJoin(c): w.write(UInt8(9)); w.write(c)
        case let .federationLeave(c): w.write(UInt8(10)); w.write(c)
        case let .delistDataset(d): w.write(UInt8(11)); w.write(d)
        case let .relistDataset(d): w.write(UInt8(12)); w.write(d)
        }
    }

    public init(from r: inout CanonicalReader) throws {
        let n = Registry.maxName
        switch try r.readUInt8() {
        case 1: self = .setParam(name: try r.readString(limit: n), value: try r.readUInt64())
        case 2: self = .setCommunityParam(community: try r.readString(limit: n), name: try r.readString(limit: n), value: try r.readUInt64())
        case 3:
            let c = try r.readString(limit: n)
            guard let s = VotingScheme(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown voting scheme") }
            self = .setScheme(community: c, scheme: s)
        case 4: self = .setOpen(community: try r.readString(limit: n), open: try r.readBool())
        case 5: self = .listModel(try r.readString(limit: n))
        case 6: self = .delistModel(try r.readString(limit: n))
        case 7: self = .treasurySpend(to: try r.readAddress(), amount: try r.readAmount())
        case 8: self = .grantReputation(account: try r.readAddress(), points: try r.readUInt64())
        case 9: self = .federationJoin(try r.readString(limit: n))
        case 10: self = .federationLeave(try r.readString(limit: n))
        case 11: self = .delistDataset(try r.readHash())
        case 12: self = .relistDataset(try r.readHash())
        case let t: throw PlexusError(.malformed, "unknown proposal action \(t)")
        }
    }
}

/// JSON: `{"kind": "set_param", "name": ..., "value": ...}` and so on.
extension ProposalAction: Codable {
    enum Keys: String, CodingKey { case kind, name, value, community, scheme, open, model, to, amount, account, points, dataset }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "set_param": self = .setParam(name: try c.decode(String.self, forKey: .name), value: try c.decode(UInt64.self, forKey: .value))
        case "set_community_param":
            self = .setCommunityParam(community: try c.decode(String.self, forKey: .community), name: try c.decode(String.self, forKey: .name),
                                      value: try c.decode(UInt64.self, forKey: .value))
        case "set_scheme": self = .setScheme(community: try c.decode(String.self, forKey: .community), scheme: try c.decode(VotingScheme.self, forKey: .scheme))
        case "set_open": self = .setOpen(community: try c.decode(String.self, forKey: .community), open: try c.decode(Bool.self, forKey: .open))
        case "list_model": self = .listModel(try c.decode(String.self, forKey: .model))
        case "delist_model": self = .delistModel(try c.decode(String.self, forKey: .model))
        case "treasury_spend": self = .treasurySpend(to: try c.decode(Address.self, forKey: .to), amount: try c.decode(Amount.self, forKey: .amount))
        case "grant_reputation": self = .grantReputation(account: try c.decode(Address.self, forKey: .account), points: try c.decode(UInt64.self, forKey: .points))
        case "federation_join": self = .federationJoin(try c.decode(String.self, forKey: .community))
        case "federation_leave": self = .federationLeave(try c.decode(String.self, forKey: .community))
        case "delist_dataset": self = .delistDataset(try c.decode(Hash256.self, forKey: .dataset))
        case "relist_dataset": self = .relistDataset(try c.decode(Hash256.self, forKey: .dataset))
        case let k: throw PlexusError(.malformed, "unknown proposal action '\(k.prefix(32))'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(kind, forKey: .kind)
        switch self {
        case let .setParam(n, v): try c.encode(n, forKey: .name); try c.encode(v, forKey: .value)
        case let .setCommunityParam(cm, n, v): try c.encode(cm, forKey: .community); try c.encode(n, forKey: .name); try c.encode(v, forKey: .value)
        case let .setScheme(cm, s): try c.encode(cm, forKey: .community); try c.encode(s, forKey: .scheme)
        case let .setOpen(cm, o): try c.encode(cm, forKey: .community); try c.encode(o, forKey: .open)
        case let .listModel(m), let .delistModel(m): try c.encode(m, forKey: .model)
        case let .treasurySpend(to, a): try c.encode(to, forKey: .to); try c.encode(a, forKey: .amount)
        case let .grantReputation(a, p): try c.encode(a, forKey: .account); try c.encode(p, forKey: .points)
        case let .federationJoin(cm), let .federationLeave(cm): try c.encode(cm, forKey: .community)
        case let .delistDataset(d), let .relistDataset(d): try c.encode(d, forKey: .dataset)
        }
    }
}

/// What a proposal says; its hash is the proposal's id.
public struct ProposalContent: Sendable, Hashable, Codable, CanonicalCodable {
    /// The communities that vote; each must approve (distributed veto).
    public var communities: [String]
    public var title: String
    public var description: String
    /// Effects, applied together on execution; none for a text signal.
    public var actions: [ProposalAction]

    public init(communities: [String], title: String, description: String = "", actions: [ProposalAction] = []) {
        self.communities = communities
        self.title = title
        self.description = description
        self.actions = actions
    }

    static let domain = Array("plexus-proposal-v1".utf8)

    /// The proposal id: SHA-256 of the canonical content under a domain tag.
    public var id: Hash256 {
        var w = CanonicalWriter(capacity: 256)
        w.write(fixed: Self.domain)
        encode(to: &w)
        return Hash256.of(w.bytes)
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt32(communities.count)); for c in communities { w.write(c) }
        w.write(title); w.write(description); w.write(array: actions)
    }

    public init(from r: inout CanonicalReader) throws {
        let n = Int(try r.readUInt32())
        guard n <= Governance.maxCommunitiesPerProposal else { throw PlexusError(.tooLarge, "a proposal names at most \(Governance.maxCommunitiesPerProposal) communities") }
        communities = []
        for _ in 0..<n { communities.append(try r.readString(limit: Registry.maxName)) }
        title = try r.readString(limit: Governance.maxTitle)
        description = try r.readString(limit: Governance.maxDescription)
        actions = try r.readArray(of: ProposalAction.self, limit: Governance.maxActions)
    }
}

/// One community's part of a proposal's vote.
public struct CommunityVote: Sendable, Hashable, CanonicalCodable {
    public var community: String
    public var scheme: VotingScheme
    /// The quorum numerator (basis points) when the proposal was made;
    /// later changes do not touch open proposals.
    public var quorumBps: UInt64
    public var tally: Tally
    /// Total voting power at the snapshot, fixed at the first vote.
    public var totalPower: UInt64?

    public init(community: String, scheme: VotingScheme, quorumBps: UInt64) {
        self.community = community
        self.scheme = scheme
        self.quorumBps = quorumBps
        self.tally = Tally(quadratic: scheme == .quadratic)
    }

    /// ⌊total × numerator / 10 000⌋.
    public static func quorum(total: UInt64, bps: UInt64) -> UInt64 {
        UInt64((UInt128(total) * UInt128(bps)) / 10_000)
    }

    /// For + Abstain reach the quorum of the total at the snapshot (0 while it is unknown).
    public var quorumReached: Bool {
        let s = tally.scores
        return Self.quorum(total: totalPower ?? 0, bps: quorumBps) <= s[Choice.for.rawValue] &+ s[Choice.abstain.rawValue]
    }

    /// Quorum reached and For > Against strictly.
    public var succeeded: Bool {
        let s = tally.scores
        return tally.voters > 0 && quorumReached && s[Choice.for.rawValue] > s[Choice.against.rawValue]
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(community); w.write(scheme.rawValue); w.write(quorumBps); w.write(tally)
        w.write(totalPower != nil); w.write(totalPower ?? 0)
    }

    public init(from r: inout CanonicalReader) throws {
        community = try r.readString(limit: Registry.maxName)
        guard let s = VotingScheme(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown voting scheme") }
        scheme = s
        quorumBps = try r.readUInt64()
        tally = try Tally(from: &r)
        let has = try r.readBool()
        let t = try r.readUInt64()
        totalPower = has ? t : nil
    }
}

/// A summary of a proposal produced by the network's own models.
public struct ProposalSummary: Sendable, Hashable, Codable, CanonicalCodable {
    public var summaryHash: Hash256
    public var model: String
    public var requestId: Hash256
    public var recordedBy: Address

    public init(summaryHash: Hash256, model: String, requestId: Hash256, recordedBy: Address) {
        self.summaryHash = summaryHash
        self.model = model
        self.requestId = requestId
        self.recordedBy = recordedBy
    }

    public func encode(to w: inout CanonicalWriter) { w.write(summaryHash); w.write(model); w.write(requestId); w.write(recordedBy) }
    public init(from r: inout CanonicalReader) throws {
        summaryHash = try r.readHash(); model = try r.readString(limit: Registry.maxName); requestId = try r.readHash(); recordedBy = try r.readAddress()
    }
}

/// Where a proposal stands (OpenZeppelin Governor's states).
public enum ProposalState: String, Sendable, Codable {
    case pending, active, canceled, defeated, succeeded, queued, expired, executed
}

/// A proposal on the ledger.
public struct Proposal: Sendable, Hashable, CanonicalCodable {
    public var id: Hash256
    public var content: ProposalContent
    public var proposer: Address
    public var createdHeight: UInt64
    /// Voting opens after this height (creation + voting delay).
    public var snapshot: UInt64
    /// Voting closes after this height (inclusive), possibly extended once.
    public var deadline: UInt64
    /// Whether the late-quorum extension has been applied.
    public var extended: Bool = false
    /// When queued: the height from which it may execute.
    public var eta: UInt64?
    /// Blocks after `eta` during which it may execute.
    public var gracePeriod: UInt64
    public var executed: Bool = false
    public var canceled: Bool = false
    public var votes: [CommunityVote]
    public var summary: ProposalSummary?

    /// The state at `height` (OpenZeppelin Governor's order of rules).
    public func state(at height: UInt64) -> ProposalState {
        if executed { return .executed }
        if canceled { return .canceled }
        if height <= snapshot { return .pending }
        if height <= deadline { return .active }
        if !succeededVote { return .defeated }
        guard let eta else { return .succeeded }
        let (end, o) = eta.addingReportingOverflow(gracePeriod)
        if !o && height >= end { return .expired }
        return .queued
    }

    /// Every named community reached quorum and For > Against strictly.
    public var succeededVote: Bool {
        votes.allSatisfy(\.succeeded)
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(content); w.write(proposer); w.write(createdHeight); w.write(snapshot); w.write(deadline)
        w.write(extended); w.write(eta != nil); w.write(eta ?? 0); w.write(gracePeriod); w.write(executed); w.write(canceled)
        w.write(array: votes); w.write(optional: summary)
    }

    public init(id: Hash256, content: ProposalContent, proposer: Address, createdHeight: UInt64, snapshot: UInt64, deadline: UInt64,
                gracePeriod: UInt64, votes: [CommunityVote]) {
        self.id = id; self.content = content; self.proposer = proposer; self.createdHeight = createdHeight
        self.snapshot = snapshot; self.deadline = deadline; self.gracePeriod = gracePeriod; self.votes = votes
    }

    public init(from r: inout CanonicalReader) throws {
        id = try r.readHash(); content = try ProposalContent(from: &r); proposer = try r.readAddress()
        createdHeight = try r.readUInt64(); snapshot = try r.readUInt64(); deadline = try r.readUInt64()
        extended = try r.readBool()
        let hasEta = try r.readBool()
        let e = try r.readUInt64()
        eta = hasEta ? e : nil
        gracePeriod = try r.readUInt64(); executed = try r.readBool(); canceled = try r.readBool()
        votes = try r.readArray(of: CommunityVote.self, limit: Governance.maxCommunitiesPerProposal)
        summary = try r.readOptional(ProposalSummary.self)
    }
}

/// A vote cast: the ballot and the power it carried in each named community.
public struct Ballot: Sendable, Hashable, Codable, CanonicalCodable {
    public var weights: [UInt32]
    public var power: [UInt64]
    public var height: UInt64

    public init(weights: [UInt32], power: [UInt64], height: UInt64) {
        self.weights = weights
        self.power = power
        self.height = height
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt32(weights.count)); for x in weights { w.write(x) }
        w.write(UInt32(power.count)); for x in power { w.write(x) }
        w.write(height)
    }

    public init(from r: inout CanonicalReader) throws {
        let n = Int(try r.readUInt32()); guard n <= 8 else { throw PlexusError(.tooLarge, "ballot too large") }
        weights = try (0..<n).map { _ in try r.readUInt32() }
        let m = Int(try r.readUInt32()); guard m <= Governance.maxCommunitiesPerProposal else { throw PlexusError(.tooLarge, "ballot too large") }
        power = try (0..<m).map { _ in try r.readUInt64() }
        height = try r.readUInt64()
    }
}
