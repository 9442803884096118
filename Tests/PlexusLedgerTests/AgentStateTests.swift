import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Agents with budgets on the ledger: an agent's requests settle from its payer's escrow only
/// within its policy; refused otherwise, with nothing moved; calls paid once, from the right purse.
@Suite struct AgentStateTests {
    // The harness's accounts: 5 and 6 requestors with 100 PLX of escrow each; 11 an outsider, here the agent.
    let base = VerificationStateTests(params: [:])
    static let agent = 11
    /// One request of 20 input and 10 output tokens costs 40,000 units; of 30 output tokens 80,000.
    static let policy = AgentPolicy(budget: Amount(units: 100_000), periodBlocks: 30, maxPerRequest: Amount(units: 60_000), models: ["m"])

    func settled(_ l: VerificationStateTests.Ledger, _ id: String, requestor: Int = agent, output: UInt64 = 10) throws -> (Event, Amount) {
        let r = base.receipt(id, requestor: requestor, output: output, exact: false)
        let escrow = l.state.account(l.address(5)).escrow
        let events = try l.send(4, .settle(receipts: [r]))
        let e = try #require(events.first { if case .settlementPending = $0 { true } else if case .settlementRejected = $0 { true } else { false } })
        return (e, Amount(units: escrow.units - l.state.account(l.address(5)).escrow.units))
    }

    static func rejected(_ e: Event, _ code: PlexusError.Code) -> Bool {
        if case let .settlementRejected(_, reason) = e { return reason.hasPrefix(code.rawValue) }
        return false
    }

    @Test func anAgentSpendsItsPayersEscrowWithinItsBudgetPerPeriod() throws {
        let l = try base.network()
        try l.send(5, .grantAgent(agent: l.address(Self.agent), policy: Self.policy))
        let granted = try #require(l.state.agents[l.address(Self.agent)])
        #expect(granted.payer == l.address(5) && granted.remaining(at: l.state.height) == Amount(units: 100_000))
        let agentEscrow = l.state.account(l.address(Self.agent)).escrow

        var (e, paid) = try settled(l, "a1")
        guard case .settlementPending = e else { Issue.record("a1: \(e)"); return }
        #expect(paid == Amount(units: 40_000))
        #expect(l.state.settlements[Hash256.of(Array("a1".utf8))]?.requestor == l.address(Self.agent))
        (e, paid) = try settled(l, "a2")
        #expect(paid == Amount(units: 40_000))
        // 80,000 of 100,000 spent: a third request of 40,000 is refused, and nothing moves.
        (e, paid) = try settled(l, "a3")
        #expect(Self.rejected(e, .agentBudget) && paid.isZero, "\(e)")
        #expect(l.state.settlements[Hash256.of(Array("a3".utf8))] == nil)
        // Above the most per request (80,000 > 60,000), even with budget left.
        try l.tick(until: granted.grantedHeight + 30)
        (e, paid) = try settled(l, "a4", output: 30)
        #expect(Self.rejected(e, .agentPrice) && paid.isZero, "\(e)")
        // The next period has the whole budget again.
        (e, paid) = try settled(l, "a3")
        #expect(paid == Amount(units: 40_000), "\(e)")
        #expect(l.state.agents[l.address(Self.agent)]?.spent == Amount(units: 40_000))
        // The agent's own escrow was never touched.
        #expect(l.state.account(l.address(Self.agent)).escrow == agentEscrow)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func modelsRevocationAndExpiryAreEnforcedAtSettlement() throws {
        let l = try base.network()
        var other = Self.policy
        other.models = ["other-model"]
        try l.send(5, .grantAgent(agent: l.address(Self.agent), policy: other))
        var (e, paid) = try settled(l, "b1")
        #expect(Self.rejected(e, .agentModel) && paid.isZero, "\(e)")
        // A new policy from the same payer replaces it at once.
        try l.send(5, .grantAgent(agent: l.address(Self.agent), policy: Self.policy))
        (e, paid) = try settled(l, "b2")
        #expect(paid == Amount(units: 40_000))
        try l.send(5, .revokeAgent(agent: l.address(Self.agent)))
        (e, paid) = try settled(l, "b3")
        #expect(Self.rejected(e, .agentRevoked) && paid.isZero, "\(e)")
        // Expiry: a policy that ends two blocks on.
        var short = Self.policy
        short.expiresHeight = l.state.height + 3
        try l.send(5, .grantAgent(agent: l.address(Self.agent), policy: short))
        (e, paid) = try settled(l, "b4")
        #expect(paid == Amount(units: 40_000), "\(e)")
        try l.tick(until: short.expiresHeight)
        (e, paid) = try settled(l, "b5")
        #expect(Self.rejected(e, .agentRevoked) && paid.isZero, "\(e)")
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func callsArePaidOnceFromTheRightPurse() throws {
        let l = try base.network()
        try l.send(5, .grantAgent(agent: l.address(Self.agent), policy: Self.policy))
        // Requestor 6 made request c1 (a service calling the network); the agent pays 6 for it.
        let (e, _) = try settled(l, "c1", requestor: 6)
        guard case .settlementPending = e else { Issue.record("c1: \(e)"); return }
        let c1 = Hash256.of(Array("c1".utf8))
        let payerEscrow = l.state.account(l.address(5)).escrow, serviceBalance = l.state.account(l.address(6)).balance
        let agentBalance = l.state.account(l.address(Self.agent)).balance
        try l.send(Self.agent, .payForCall(to: l.address(6), amount: Amount(units: 25_000), requestId: c1))
        #expect(l.state.account(l.address(5)).escrow == Amount(units: payerEscrow.units - 25_000))
        #expect(l.state.account(l.address(6)).balance == Amount(units: serviceBalance.units + 25_000))
        // The agent paid only the fee, from its own balance.
        #expect(l.state.account(l.address(Self.agent)).balance.units == agentBalance.units - 1_000)
        #expect(l.state.agents[l.address(Self.agent)]?.spent == Amount(units: 25_000))
        #expect(l.state.callPayments[c1]?.from == l.address(Self.agent))
        // Once per request.
        try l.refuse(7, .payForCall(to: l.address(6), amount: Amount(units: 1), requestId: c1))
        // An account that is no agent pays from its own balance.
        let (e2, _) = try settled(l, "c2", requestor: 6)
        guard case .settlementPending = e2 else { Issue.record("c2: \(e2)"); return }
        let before7 = l.state.account(l.address(7)).balance
        try l.send(7, .payForCall(to: l.address(6), amount: Amount(units: 9_000), requestId: Hash256.of(Array("c2".utf8))))
        #expect(l.state.account(l.address(7)).balance.units == before7.units - 9_000 - 1_000)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func hostileAgentTransactionsAreRefusedAndChangeNothing() throws {
        let l = try base.network()
        let agent = l.address(Self.agent)
        func policy(_ change: (inout AgentPolicy) -> Void) -> AgentPolicy {
            var p = Self.policy
            change(&p)
            return p
        }
        try l.refuse(5, .grantAgent(agent: l.address(5), policy: Self.policy))
        try l.refuse(5, .grantAgent(agent: .treasury, policy: Self.policy))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.budget = .zero }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.maxPerRequest = .zero }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.periodBlocks = 0 }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.maxPerRequest = Amount(units: 100_001) }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.models = (0...16).map { "m\($0)" } }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.models = ["m", "m"] }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.models = [""] }))
        try l.refuse(5, .grantAgent(agent: agent, policy: policy { $0.expiresHeight = 1 }))
        try l.refuse(5, .revokeAgent(agent: agent))
        try l.send(5, .grantAgent(agent: agent, policy: Self.policy))
        // Bound to payer 5: another payer cannot take it over, nor can it grant agents itself.
        try l.refuse(6, .grantAgent(agent: agent, policy: Self.policy))
        try l.refuse(6, .revokeAgent(agent: agent))
        try l.refuse(Self.agent, .grantAgent(agent: l.address(7), policy: Self.policy))
        // Calls: nothing, to itself or the treasury, for no settled request, for a request someone else made, beyond the policy.
        let (e, _) = try settled(l, "h1", requestor: 6)
        guard case .settlementPending = e else { Issue.record("h1: \(e)"); return }
        let h1 = Hash256.of(Array("h1".utf8))
        try l.refuse(Self.agent, .payForCall(to: l.address(6), amount: .zero, requestId: h1))
        try l.refuse(Self.agent, .payForCall(to: agent, amount: Amount(units: 5), requestId: h1))
        try l.refuse(Self.agent, .payForCall(to: .treasury, amount: Amount(units: 5), requestId: h1))
        try l.refuse(Self.agent, .payForCall(to: l.address(6), amount: Amount(units: 5), requestId: Hash256.of([1, 2, 3])))
        try l.refuse(Self.agent, .payForCall(to: l.address(7), amount: Amount(units: 5), requestId: h1))
        try l.refuse(Self.agent, .payForCall(to: l.address(6), amount: Amount(units: 60_001), requestId: h1))
        try l.refuse(7, .payForCall(to: l.address(6), amount: .max, requestId: h1))
        try l.send(5, .revokeAgent(agent: agent))
        try l.refuse(5, .revokeAgent(agent: agent))
        try l.refuse(Self.agent, .payForCall(to: l.address(6), amount: Amount(units: 5), requestId: h1))
    }
}

extension AgentStateTests {
    /// Fraud upheld on an agent's request: the charge goes back to its payer's escrow, not the agent's.
    @Test func anAgentsRefundGoesBackToItsPayer() throws {
        let l = try base.network()
        try l.send(5, .grantAgent(agent: l.address(Self.agent), policy: Self.policy))
        let r = base.receipt("agent-fraud", requestor: Self.agent, output: 10)
        let v = try #require(try base.settleAndDraw(l, [r]).verifier)
        let charge = try #require(l.state.settlements[r.requestId]).charge
        let payerEscrow = l.state.account(l.address(5)).escrow, agentEscrow = l.state.account(l.address(Self.agent)).escrow
        try l.send(base.index(of: v), .verdict(requestId: r.requestId, pass: false, share: 0, evidence: []))
        _ = try base.vote(l, r.requestId, fraud: true, dissent: false)
        #expect(l.state.settlements[r.requestId]?.status == .refunded)
        #expect(l.state.account(l.address(5)).escrow.units == payerEscrow.units + charge.units)
        #expect(l.state.account(l.address(Self.agent)).escrow == agentEscrow)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }
}
