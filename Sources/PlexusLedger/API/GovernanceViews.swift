import PlexusCore

/// JSON view of a proposal with its state and tallies.
public struct ProposalView: Codable, Sendable {
    public struct Count: Codable, Sendable {
        public var community: String
        public var scheme: VotingScheme
        public var quorumBps: UInt64
        /// Votes needed (For + Abstain), once the snapshot has passed.
        public var quorum: UInt64?
        public var totalPower: UInt64?
        public var forVotes: UInt64
        public var againstVotes: UInt64
        public var abstainVotes: UInt64
        public var voters: UInt64
        public var quorumReached: Bool
    }

    public var id: Hash256
    public var title: String
    public var description: String
    public var communities: [String]
    public var actions: [ProposalAction]
    public var proposer: Address
    public var state: ProposalState
    public var createdHeight: UInt64
    public var snapshot: UInt64
    public var deadline: UInt64
    public var extended: Bool
    public var eta: UInt64?
    public var expiresAt: UInt64?
    public var counts: [Count]
    public var summary: ProposalSummary?

    public init(_ p: Proposal, state: ProposalState) {
        id = p.id
        title = p.content.title
        description = p.content.description
        communities = p.content.communities
        actions = p.content.actions
        proposer = p.proposer
        self.state = state
        createdHeight = p.createdHeight
        snapshot = p.snapshot
        deadline = p.deadline
        extended = p.extended
        eta = p.eta
        expiresAt = p.eta.map { $0 &+ p.gracePeriod }
        summary = p.summary
        counts = p.votes.map { v in
            let quorum = v.totalPower.map { CommunityVote.quorum(total: $0, bps: v.quorumBps) }
            let s = v.tally.scores
            return Count(community: v.community, scheme: v.scheme, quorumBps: v.quorumBps, quorum: quorum, totalPower: v.totalPower,
                         forVotes: s[Choice.for.rawValue], againstVotes: s[Choice.against.rawValue], abstainVotes: s[Choice.abstain.rawValue],
                         voters: v.tally.voters, quorumReached: v.totalPower != nil && v.quorumReached)
        }
    }
}

/// JSON view of a community.
public struct CommunityView: Codable, Sendable {
    public var id: String
    public var scheme: VotingScheme
    public var open: Bool
    public var founder: Address
    public var createdHeight: UInt64
    public var forkedFrom: String?
    public var settings: [String: UInt64]
    public var memberCount: UInt64
    public var members: [Address]
    public var applicants: [Address]
    public var council: [Address]
    public var councilSince: UInt64?
    public var pendingDraw: UInt64?
    public var history: [Hash256]
    public var federated: Bool

    public init(_ c: Community, state: LedgerState) {
        id = c.id
        scheme = c.scheme
        open = c.open
        founder = c.founder
        createdHeight = c.createdHeight
        forkedFrom = c.forkedFrom
        var s: [String: UInt64] = [:]
        for key in Governance.communitySettings { s[key.name] = state.setting(key, of: c) }
        settings = s
        memberCount = c.memberCount
        members = Array(state.members(of: c.id).prefix(1_000))
        applicants = (state.memberships[c.id] ?? [:]).filter { $0.value.applied }.map(\.key).sorted()
        if c.id == Governance.federation {
            council = state.govTotals.assembly.last?.members ?? []
            councilSince = state.govTotals.assembly.last?.fromHeight
            pendingDraw = state.govTotals.pendingDraw
        } else {
            council = c.councils.last?.members ?? []
            councilSince = c.councils.last?.fromHeight
            pendingDraw = c.pendingDraw
        }
        history = c.history
        federated = state.govTotals.federation.contains(c.id)
    }
}

/// JSON view of an account's governance standing.
public struct VoterView: Codable, Sendable {
    public var address: Address
    public var delegate: Address
    /// Token voting power now (own stake unless delegated away, plus stake delegated to it).
    public var votes: UInt64
    public var stake: UInt64
    public var reputation: UInt64
    public var communities: [String]

    public init(_ a: Address, state: LedgerState) {
        let v = state.voters[a] ?? VoterRecord()
        address = a
        delegate = state.delegate(of: a)
        votes = v.votes.latest
        stake = v.stake.latest
        reputation = v.reputation.latest
        communities = v.communities
    }
}

/// JSON view of the federation.
public struct FederationView: Codable, Sendable {
    public var communities: [String]
    public var seats: [UInt64]
    public var assembly: [Address]
    public var since: UInt64?
    public var termEnd: UInt64
    public var pendingDraw: UInt64?

    public init(_ t: GovernanceTotals) {
        communities = t.federation
        seats = t.seats
        assembly = t.assembly.last?.members ?? []
        since = t.assembly.last?.fromHeight
        termEnd = t.termEnd
        pendingDraw = t.pendingDraw
    }
}

extension LedgerState {
    /// Every account's stake and reputation (for fairness analysis), by address.
    public func holders() -> [FairnessAnalysis.Holder] {
        var set = Set(voters.keys)
        for (a, acct) in accounts where !acct.staked.isZero { set.insert(a) }
        return set.sorted().compactMap { a in
            let stake = account(a).staked.units
            let rep = voters[a]?.reputation.latest ?? 0
            return stake > 0 || rep > 0 ? FairnessAnalysis.Holder(tokens: stake, reputation: rep) : nil
        }
    }
}
