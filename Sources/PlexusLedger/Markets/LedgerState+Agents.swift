import PlexusCore

/// Agents with budgets: a payer lets an agent account spend the payer's escrow under a
/// policy (`AgentPolicy`), changes or revokes it at once; settlement charges an agent's
/// requests to its payer's escrow only within the policy (a request beyond it is refused,
/// not paid); and any account may pay another for a call tied to a settled request
/// (agent-to-agent services), an agent from its payer's escrow under its policy.
extension LedgerState {
    /// What an agent transaction changes, planned with every check done.
    struct AgentPlan {
        var grant: AgentGrant?
        var payment: CallPayment?
        /// Accounts other than the sender, updated.
        var writes: [(Address, Account)] = []
        var events: [Event] = []
    }

    /// The account that pays for `requestor`'s requests: its payer if it is an agent, else itself.
    public func payer(of requestor: Address) -> Address { agents[requestor]?.payer ?? requestor }

    /// Checks an agent transaction of `tx.from` and plans it; `sender` is changed only where the
    /// sender itself pays (a call paid from its own balance). Throws having changed nothing.
    func planAgents(_ tx: Transaction, sender: inout Account) throws -> AgentPlan {
        var plan = AgentPlan()
        switch tx.body {
        case let .grantAgent(agent, policy):
            guard agent != tx.from, agent != .treasury else { throw PlexusError(.outOfRange, "an account cannot be its own agent, nor the treasury one") }
            try policy.validate()
            guard policy.expiresHeight == 0 || policy.expiresHeight > height else {
                throw PlexusError(.outOfRange, "the policy expires at height \(policy.expiresHeight), not after the current \(height)")
            }
            if let g = agents[agent], g.payer != tx.from {
                throw PlexusError(.invalidState, "\(agent.short) is \(g.payer.short)'s agent; an agent has one payer for good")
            }
            if agents[tx.from] != nil {
                throw PlexusError(.invalidState, "\(tx.from.short) is an agent itself and cannot grant agents")
            }
            plan.grant = AgentGrant(agent: agent, payer: tx.from, policy: policy, grantedHeight: height)
            plan.events.append(.market(action: "agent_granted", subject: agent.text,
                                       detail: "payer \(tx.from.text) budget \(policy.budget.units)u per \(policy.periodBlocks) blocks, at most \(policy.maxPerRequest.units)u a request"))

        case let .revokeAgent(agent):
            guard var g = agents[agent], g.payer == tx.from else { throw PlexusError(.notFound, "\(agent.short) is not \(tx.from.short)'s agent") }
            guard !g.revoked else { throw PlexusError(.invalidState, "\(agent.short)'s grant is already revoked") }
            g.revoked = true
            plan.grant = g
            plan.events.append(.market(action: "agent_revoked", subject: agent.text, detail: "payer \(tx.from.text)"))

        case let .payForCall(to, amount, requestId):
            try Self.requirePositive(amount)
            guard to != tx.from, to != .treasury else { throw PlexusError(.outOfRange, "a call is paid to another account, not the sender or the treasury") }
            guard callPayments[requestId] == nil else { throw PlexusError(.invalidState, "the call of request \(requestId.hex.prefix(16)) is already paid") }
            guard let s = settlements[requestId], s.status != .refunded else {
                throw PlexusError(.notFound, "no settled request \(requestId.hex.prefix(16)) to tie the payment to")
            }
            guard s.requestor == to else { throw PlexusError(.invalidState, "request \(requestId.hex.prefix(16)) was made by \(s.requestor.short), not \(to.short)") }
            if let g = agents[tx.from] {
                if let refusal = g.refusal(of: amount, model: nil, at: height) { throw refusal }
                var payer = account(g.payer)
                guard amount <= payer.escrow else {
                    throw PlexusError(.insufficientFunds, "\(g.payer.short) has \(payer.escrow) in escrow, the call costs \(amount)")
                }
                payer.escrow = try payer.escrow.subtracting(amount)
                if to == g.payer {
                    payer.balance = try payer.balance.adding(amount)
                    plan.writes.append((g.payer, payer))
                } else {
                    var recipient = account(to)
                    recipient.balance = try recipient.balance.adding(amount)
                    plan.writes += [(g.payer, payer), (to, recipient)]
                }
                plan.grant = g.spending(amount, at: height)
            } else {
                sender.balance = try Self.debit(sender.balance, amount, tx.from)
                var recipient = account(to)
                recipient.balance = try recipient.balance.adding(amount)
                plan.writes.append((to, recipient))
            }
            plan.payment = CallPayment(requestId: requestId, from: tx.from, to: to, amount: amount, height: height)
            plan.events.append(.transferred(from: tx.from, to: to, amount: amount))
            plan.events.append(.market(action: "call_paid", subject: requestId.hex, detail: "\(tx.from.text) paid \(to.text) \(amount.units)u"))

        default:
            throw PlexusError(.unknownKind, "not an agent transaction")
        }
        return plan
    }

    /// Records a planned agent transaction's grant and payment (the accounts are stored by `apply`).
    mutating func applyAgents(_ plan: AgentPlan) {
        if let g = plan.grant {
            agents[g.agent] = g
            dirtyRecords.insert(.agent(g.agent))
        }
        if let p = plan.payment {
            callPayments[p.requestId] = p
            dirtyRecords.insert(.callPayment(p.requestId))
        }
    }
}
