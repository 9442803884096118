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
    /// The assembly's sortition draws the ledger still holds, newest first (at most 50): from
    /// which height each sat, and who.
    public var draws: [CouncilTerm]?

    public init(_ t: GovernanceTotals) {
        communities = t.federation
        seats = t.seats
        assembly = t.assembly.last?.members ?? []
        since = t.assembly.last?.fromHeight
        termEnd = t.termEnd
        pendingDraw = t.pendingDraw
        draws = Array(t.assembly.suffix(50).reversed())
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

/// Who voted on a proposal, with what, and who could have and did not
/// (`GET /v1/governance/proposals/{id}/ballots`).
public struct BallotsView: Codable, Sendable {
    public struct Cast: Codable, Sendable, Hashable {
        public var voter: Address
        /// Weights against, for, abstain (`Choice` order).
        public var weights: [UInt32]
        /// Power in each of the proposal's communities, in order.
        public var power: [UInt64]
        public var height: UInt64
    }

    public struct Absent: Codable, Sendable, Hashable {
        public var voter: Address
        public var power: [UInt64]
    }

    public var proposal: Hash256
    public var communities: [String]
    public var cast: [Cast]
    /// Accounts with power at the snapshot in one of the proposal's communities that did not vote,
    /// the strongest first, at most `maxAbsent`.
    public var absent: [Absent]
    public var absentCount: Int

    public static let maxAbsent = 200

    public init?(_ id: Hash256, in state: LedgerState) {
        guard let p = state.proposals[id] else { return nil }
        proposal = id
        communities = p.votes.map(\.community)
        let ballots = state.ballots[id] ?? [:]
        cast = ballots.map { Cast(voter: $0.key, weights: $0.value.weights, power: $0.value.power, height: $0.value.height) }
            .sorted { ($0.power.reduce(0, &+), $0.voter) > ($1.power.reduce(0, &+), $1.voter) }
        // The electorate: the root community's token and reputation holders, another community's
        // members, a council's or the assembly's seats.
        var electorate = Set<Address>()
        for v in p.votes {
            guard let c = state.communities[v.community] else { continue }
            switch v.scheme {
            case .council, .sortition: electorate.formUnion(c.council(before: p.snapshot))
            case .assembly: electorate.formUnion(state.govTotals.assembly.last(where: { $0.fromHeight < p.snapshot })?.members ?? [])
            default:
                if c.id == Governance.root { electorate.formUnion(state.voters.keys) } else { electorate.formUnion(state.members(of: c.id)) }
            }
        }
        var absent: [Absent] = []
        for a in electorate where ballots[a] == nil {
            let power = p.votes.map { v in state.communities[v.community].map { state.power(of: a, in: $0, scheme: v.scheme, before: p.snapshot) } ?? 0 }
            if power.contains(where: { $0 > 0 }) { absent.append(Absent(voter: a, power: power)) }
        }
        absent.sort { ($0.power.reduce(0, &+), $0.voter) > ($1.power.reduce(0, &+), $1.voter) }
        absentCount = absent.count
        self.absent = Array(absent.prefix(Self.maxAbsent))
    }
}
