import PlexusCore

/// What a payer lets an agent spend of the payer's escrow: a budget per period of blocks,
/// a most per request, the models it may call (none listed: any) and an expiry height
/// (0: none). The gateway enforces it when it admits a request; the ledger again when it
/// settles one (a settlement beyond the policy is refused, not paid).
public struct AgentPolicy: Sendable, Hashable, Codable, CanonicalCodable {
    public var budget: Amount
    public var periodBlocks: UInt64
    public var maxPerRequest: Amount
    public var models: [String]
    public var expiresHeight: UInt64

    public static let maxModels = 16

    public init(budget: Amount, periodBlocks: UInt64, maxPerRequest: Amount, models: [String] = [], expiresHeight: UInt64 = 0) {
        self.budget = budget
        self.periodBlocks = periodBlocks
        self.maxPerRequest = maxPerRequest
        self.models = models
        self.expiresHeight = expiresHeight
    }

    /// Throws unless the policy is well-formed: a positive budget, period and most per request,
    /// that most within the budget, at most 16 distinct model ids.
    public func validate() throws {
        guard !budget.isZero, !maxPerRequest.isZero, periodBlocks > 0 else {
            throw PlexusError(.outOfRange, "an agent policy needs a budget, a most per request and a period above zero")
        }
        guard maxPerRequest <= budget else { throw PlexusError(.outOfRange, "the most per request (\(maxPerRequest)) exceeds the budget (\(budget))") }
        guard models.count <= Self.maxModels, Set(models).count == models.count,
              models.allSatisfy({ !$0.isEmpty && $0.utf8.count <= Registry.maxName }) else {
            throw PlexusError(.outOfRange, "an agent policy names at most \(Self.maxModels) distinct model ids of 1...\(Registry.maxName) bytes")
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(budget); w.write(periodBlocks); w.write(maxPerRequest)
        w.write(UInt32(models.count)); for m in models { w.write(m) }
        w.write(expiresHeight)
    }

    public init(from r: inout CanonicalReader) throws {
        budget = try r.readAmount()
        periodBlocks = try r.readUInt64()
        maxPerRequest = try r.readAmount()
        let n = Int(try r.readUInt32())
        guard n <= Self.maxModels else { throw PlexusError(.tooLarge, "an agent policy names at most \(Self.maxModels) models") }
        models = try (0..<n).map { _ in try r.readString(limit: Registry.maxName) }
        expiresHeight = try r.readUInt64()
    }
}

/// An agent's grant on the ledger: whose escrow it spends, under which policy, and what it
/// has spent in the current period. An agent is bound to one payer for good (refunds of its
/// requests go back to that payer's escrow); the payer may change the policy or revoke it.
public struct AgentGrant: Sendable, Hashable, Codable, CanonicalCodable {
    public var agent: Address
    public var payer: Address
    public var policy: AgentPolicy
    public var grantedHeight: UInt64
    /// The first height of the period `spent` counts in.
    public var periodStart: UInt64
    public var spent: Amount
    public var revoked: Bool

    public init(agent: Address, payer: Address, policy: AgentPolicy, grantedHeight: UInt64) {
        self.agent = agent
        self.payer = payer
        self.policy = policy
        self.grantedHeight = grantedHeight
        periodStart = grantedHeight
        spent = .zero
        revoked = false
    }

    /// The first height of the period holding `height` (periods run from the grant).
    public func period(at height: UInt64) -> UInt64 {
        guard height > grantedHeight else { return grantedHeight }
        return height - (height - grantedHeight) % policy.periodBlocks
    }

    /// What the agent may still spend in the period holding `height`.
    public func remaining(at height: UInt64) -> Amount {
        let spentNow = period(at: height) == periodStart ? spent : .zero
        return Amount(units: policy.budget.units > spentNow.units ? policy.budget.units - spentNow.units : 0)
    }

    /// Why the agent may not spend `amount` on `model` at `height` (nil: it may). The order is
    /// the gateway's too: revoked, expired, model, most per request, budget.
    public func refusal(of amount: Amount, model: String?, at height: UInt64) -> PlexusError? {
        if revoked { return PlexusError(.agentRevoked, "agent \(agent.short)'s grant from \(payer.short) is revoked") }
        if policy.expiresHeight != 0, height >= policy.expiresHeight {
            return PlexusError(.agentRevoked, "agent \(agent.short)'s grant expired at height \(policy.expiresHeight)")
        }
        if let model, !policy.models.isEmpty, !policy.models.contains(model) {
            return PlexusError(.agentModel, "agent \(agent.short) may call \(policy.models.joined(separator: ", ")), not '\(model.prefix(64))'")
        }
        if amount > policy.maxPerRequest {
            return PlexusError(.agentPrice, "\(amount) is above agent \(agent.short)'s most per request (\(policy.maxPerRequest))")
        }
        if amount > remaining(at: height) {
            return PlexusError(.agentBudget, "agent \(agent.short) has \(remaining(at: height)) left of its \(policy.budget) for this period; it needs \(amount)")
        }
        return nil
    }

    /// The grant after spending `amount` at `height` (checked by `refusal` first).
    public func spending(_ amount: Amount, at height: UInt64) -> AgentGrant {
        var g = self
        let p = period(at: height)
        if p != g.periodStart {
            g.periodStart = p
            g.spent = .zero
        }
        g.spent = Amount(units: g.spent.units &+ amount.units)
        return g
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(agent); w.write(payer); w.write(policy); w.write(grantedHeight); w.write(periodStart); w.write(spent); w.write(revoked)
    }

    public init(from r: inout CanonicalReader) throws {
        agent = try r.readAddress()
        payer = try r.readAddress()
        policy = try AgentPolicy(from: &r)
        grantedHeight = try r.readUInt64()
        periodStart = try r.readUInt64()
        spent = try r.readAmount()
        revoked = try r.readBool()
    }
}

/// A payment from one account to another for a call, tied to the settled request that
/// served it (an agent-to-agent service charging its caller): at most one per request.
public struct CallPayment: Sendable, Hashable, Codable, CanonicalCodable {
    public var requestId: Hash256
    public var from: Address
    public var to: Address
    public var amount: Amount
    public var height: UInt64

    public init(requestId: Hash256, from: Address, to: Address, amount: Amount, height: UInt64) {
        self.requestId = requestId
        self.from = from
        self.to = to
        self.amount = amount
        self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(requestId); w.write(from); w.write(to); w.write(amount); w.write(height) }

    public init(from r: inout CanonicalReader) throws {
        requestId = try r.readHash()
        from = try r.readAddress()
        to = try r.readAddress()
        amount = try r.readAmount()
        height = try r.readUInt64()
    }
}

extension PlexusError.Code {
    /// An agent's grant is revoked or expired.
    public static let agentRevoked = Self("agent_revoked")
    /// An agent's policy does not allow the model.
    public static let agentModel = Self("agent_model_not_allowed")
    /// Above an agent's most per request.
    public static let agentPrice = Self("agent_price_exceeded")
    /// Beyond an agent's budget for the period.
    public static let agentBudget = Self("agent_budget_exceeded")
}

/// An agent as `GET /v1/agents/{address}` shows it: its grant, the height it was read at,
/// what it may still spend this period and its payer's escrow.
public struct AgentView: Sendable, Codable {
    public var grant: AgentGrant
    public var height: UInt64
    public var periodStart: UInt64
    public var remaining: Amount
    public var payerEscrow: Amount
    /// Whether it may spend at all now (not revoked, not expired).
    public var active: Bool

    public init(_ g: AgentGrant, in state: LedgerState) {
        grant = g
        height = state.height
        periodStart = g.period(at: state.height)
        remaining = g.remaining(at: state.height)
        payerEscrow = state.account(g.payer).escrow
        active = !g.revoked && (g.policy.expiresHeight == 0 || state.height < g.policy.expiresHeight)
    }
}
