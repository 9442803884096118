import PlexusCore

/// JSON view of a spot check.
public struct CheckView: Codable, Sendable, Hashable {
    public var requestId: Hash256
    /// `undrawn`, `skipped`, `assigned`, `unassigned`, `passed`, `failed`, `missed` or `faulted`.
    public var state: String
    public var sampleRateBps: UInt16
    public var drawn: UInt16
    public var verifier: Address?
    public var deadline: UInt64
    /// Each share's commitment root and chunk count, as its receipt carried them.
    public var shares: [ShareCommitment]

    public init(_ c: Check) {
        requestId = c.requestId
        state = c.state.name
        sampleRateBps = c.rateBps
        drawn = c.drawn
        verifier = c.verifier
        deadline = c.deadline
        shares = c.shares
    }
}

/// JSON view of a dispute.
public struct DisputeView: Codable, Sendable, Hashable {
    public struct Member: Codable, Sendable, Hashable {
        public var account: Address
        public var committed: Bool
        /// After the reveal: "fraud" or "honest".
        public var vote: String?
    }

    public var requestId: Hash256
    public var share: UInt8
    public var accused: Address
    public var challenger: Address
    public var bond: Amount
    public var openedHeight: UInt64
    public var drawHeight: UInt64
    public var revealHeight: UInt64
    public var resolveHeight: UInt64
    public var committee: [Member]
    /// `open`, `upheld`, `rejected` or `dismissed`.
    public var outcome: String
    public var slashed: Amount

    public init(_ d: Dispute) {
        requestId = d.requestId
        share = d.share
        accused = d.accused
        challenger = d.challenger
        bond = d.bond
        openedHeight = d.openedHeight
        drawHeight = d.drawHeight
        revealHeight = d.revealHeight
        resolveHeight = d.resolveHeight
        committee = d.seats.map { Member(account: $0.member, committed: $0.commit != nil, vote: $0.fraud.map { $0 ? "fraud" : "honest" }) }
        outcome = d.outcome.name
        slashed = d.slashed
    }
}

/// JSON view of an account's standing as node operator and verifier.
public struct StandingView: Codable, Sendable, Hashable {
    public var account: Address
    /// Reputation now, 0 (floor) to 1; 0.5 is neutral.
    public var reputation: Double
    public var jailedUntil: UInt64
    public var jailed: Bool
    public var verifier: Bool
    public var staked: Amount
    public var served: UInt64
    public var servedTokens: UInt64?
    public var passes: UInt64
    public var frauds: UInt64
    public var verdicts: UInt64
    public var misses: UInt64
    public var faults: UInt64
    /// The share of this account's node's requests checked now, in basis points.
    public var sampleRateBps: UInt64

    public init(_ a: Address, in state: LedgerState) {
        let s = state.standing(a)
        account = a
        reputation = Double(state.reputation(of: a)) / Double(Standing.maximum)
        jailedUntil = s.jailedUntil
        jailed = s.isJailed(at: state.height)
        verifier = state.verifiers[a] != nil
        staked = state.account(a).staked
        served = s.served
        servedTokens = s.servedTokens
        passes = s.passes
        frauds = s.frauds
        verdicts = s.verdicts
        misses = s.misses
        faults = s.faults
        sampleRateBps = state.sampleRate(of: a)
    }
}

/// A settled request's verification: its settlement's status, its check and its dispute.
public struct VerificationView: Codable, Sendable, Hashable {
    public var requestId: Hash256
    /// `pending`, `final`, `disputed` or `refunded`.
    public var settlement: String
    /// False when a share's backend cannot be re-executed (no check is drawn).
    public var exactlyVerifiable: Bool
    public var check: CheckView?
    public var dispute: DisputeView?

    public init?(_ id: Hash256, in state: LedgerState) {
        guard let s = state.settlements[id] else { return nil }
        requestId = id
        settlement = s.status.rawValue
        exactlyVerifiable = state.checks[id] != nil
        check = state.checks[id].map(CheckView.init)
        dispute = state.disputes[id].map(DisputeView.init)
    }
}

/// What a verifier has to do now: checks assigned to it and disputes it sits on, open.
public struct VerifierWorkView: Codable, Sendable, Hashable {
    public var height: UInt64
    public var checks: [CheckView]
    public var disputes: [DisputeView]

    public init(_ a: Address, in state: LedgerState) {
        height = state.height
        checks = state.checks.values.filter { $0.state == .assigned && $0.verifier == a }.sorted { $0.requestId < $1.requestId }.map(CheckView.init)
        disputes = state.disputes.values.filter { $0.outcome == .open && $0.seats.contains { $0.member == a } }
            .sorted { $0.requestId < $1.requestId }.map(DisputeView.init)
    }
}

/// The node registry with each operator's standing, for routing.
public struct NodesView: Codable, Sendable {
    public struct NodeStanding: Codable, Sendable, Hashable {
        public var reputation: Double
        public var jailed: Bool
        /// The operator's stake (absent from ledgers before it was listed).
        public var staked: Amount?
        /// Requests the operator's nodes served, and their verified passes and frauds.
        public var served: UInt64?
        public var passes: UInt64?
        public var frauds: UInt64?
        /// Input and output tokens the operator's nodes' settled shares counted.
        public var servedTokens: UInt64?
    }

    public var nodes: [NodeRecord]
    /// By node owner.
    public var standing: [String: NodeStanding]?

    public init(nodes: [NodeRecord], in state: LedgerState) {
        self.nodes = nodes
        var s: [String: NodeStanding] = [:]
        for n in nodes {
            let st = state.standing(n.owner)
            s[n.owner.text] = NodeStanding(reputation: Double(state.reputation(of: n.owner)) / Double(Standing.maximum),
                                           jailed: st.isJailed(at: state.height), staked: state.account(n.owner).staked,
                                           served: st.served, passes: st.passes, frauds: st.frauds, servedTokens: st.servedTokens)
        }
        standing = s
    }

    /// The nodes that may get traffic: every one whose operator is not jailed.
    public var servable: [NodeRecord] { nodes.filter { standing?[$0.owner.text]?.jailed != true } }
}

/// Verification in Prometheus text: checks by state, disputes by outcome, what was slashed, verifiers and jails.
public enum TrustViews {
    public static func metrics(_ state: LedgerState) -> String {
        var checks: [String: Int] = [:], disputes: [String: Int] = [:]
        for c in state.checks.values { checks[c.state.name, default: 0] += 1 }
        var slashed: UInt64 = 0
        for d in state.disputes.values {
            disputes[d.outcome.name, default: 0] += 1
            slashed &+= d.slashed.units
        }
        let jailed = state.standings.values.filter { $0.isJailed(at: state.height) }.count
        var out = "# TYPE plexus_checks gauge\n"
        for name in ["undrawn", "skipped", "assigned", "unassigned", "passed", "failed", "missed", "faulted"] {
            out += "plexus_checks{state=\"\(name)\"} \(checks[name] ?? 0)\n"
        }
        out += "# TYPE plexus_disputes gauge\n"
        for name in ["open", "upheld", "rejected", "dismissed"] { out += "plexus_disputes{outcome=\"\(name)\"} \(disputes[name] ?? 0)\n" }
        out += "# TYPE plexus_slashed_units counter\nplexus_slashed_units \(slashed)\n"
        out += "# TYPE plexus_verifiers gauge\nplexus_verifiers \(state.verifiers.count)\n"
        out += "# TYPE plexus_jailed gauge\nplexus_jailed \(jailed)\n"
        return out
    }
}
