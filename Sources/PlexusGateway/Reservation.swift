import Foundation
import PlexusCore
import PlexusLedger

/// Pricing and reservation: the most a request can cost, reserved in the requestor's
/// escrow before any node is called. Pure arithmetic.
enum Reservation {
    /// The highest worst-case cost over the first `attempts` candidates: a failover
    /// re-reads the prompt and the output so far, so the input may count twice over.
    static func worstCase(_ candidates: [Candidate], inputBound: Int, maxTokens: Int, attempts: Int, premium: UInt64 = 0) throws -> UInt64 {
        var reserve: UInt64 = 0
        for c in candidates.prefix(attempts) {
            let worst = try Pricing.cost(inputTokens: UInt64(2 * inputBound + maxTokens), outputTokens: UInt64(maxTokens),
                                         priceIn: try c.offer.priceIn.adding(Amount(units: premium)), priceOut: try c.offer.priceOut.adding(Amount(units: premium)))
            reserve = max(reserve, worst.units)
        }
        return reserve
    }
}

/// Escrow reserved by requests in flight and charged but not yet settled, by the account that
/// pays; and, for agents, the same against each agent's budget for the period (an agent's
/// requests are paid from its payer's escrow).
final class EscrowBook: @unchecked Sendable {
    // Invariant: mutable state only under `lock`.
    private let lock = NSLock()
    private var reserved: [Address: UInt64] = [:]
    private var unsettled: [Address: UInt64] = [:]
    private var cache: [Address: (escrow: UInt64, at: UInt64)] = [:]
    /// Agents seen: their payer, and their budget reserved and charged but not yet settled.
    private var payers: [Address: Address] = [:]
    private var agentReserved: [Address: UInt64] = [:]
    private var agentUnsettled: [Address: UInt64] = [:]

    init(unsettled: [Address: UInt64]) { self.unsettled = unsettled }

    func cached(_ a: Address, now: UInt64) -> UInt64? {
        lock.withLock { cache[a].flatMap { now < $0.at + 1_000 ? $0.escrow : nil } }
    }

    func remember(_ a: Address, escrow: UInt64, now: UInt64) { lock.withLock { cache[a] = (escrow, now) } }

    enum Shortfall: Equatable { case escrow, budget }

    /// Reserves `amount` of `payer`'s escrow if what it has not already committed covers it
    /// and, for an agent's request, of the agent's `budget` left this period likewise; nil
    /// when reserved, else which fell short (and nothing is reserved).
    func reserve(_ payer: Address, _ amount: UInt64, escrow: UInt64, agent: Address? = nil, budget: UInt64 = 0) -> Shortfall? {
        lock.withLock {
            let used = (reserved[payer] ?? 0) &+ (unsettled[payer] ?? 0)
            guard used <= escrow, amount <= escrow - used else { return .escrow }
            if let agent {
                let spent = (agentReserved[agent] ?? 0) &+ (agentUnsettled[agent] ?? 0)
                guard spent <= budget, amount <= budget - spent else { return .budget }
                agentReserved[agent, default: 0] += amount
                payers[agent] = payer
            }
            reserved[payer, default: 0] += amount
            return nil
        }
    }

    /// Ends a reservation, recording `charge` as unsettled.
    func release(_ payer: Address, _ amount: UInt64, charge: UInt64, agent: Address? = nil) {
        lock.withLock {
            reserved[payer] = (reserved[payer] ?? amount) - amount
            if charge > 0 { unsettled[payer, default: 0] += charge }
            if let agent {
                agentReserved[agent] = (agentReserved[agent] ?? amount) - amount
                if charge > 0 { agentUnsettled[agent, default: 0] += charge }
            }
        }
    }

    /// A charge of `requestor`'s reached the ledger (or was refused): it no longer counts here.
    func settled(_ requestor: Address, _ charge: UInt64) {
        lock.withLock {
            let payer = payers[requestor] ?? requestor
            if payer != requestor {
                agentUnsettled[requestor] = (agentUnsettled[requestor] ?? 0) >= charge ? agentUnsettled[requestor]! - charge : 0
            }
            unsettled[payer] = (unsettled[payer] ?? 0) >= charge ? unsettled[payer]! - charge : 0
            cache[payer] = nil
        }
    }
}
