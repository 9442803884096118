import Foundation
import PlexusCore
import PlexusLedger

/// Pricing and reservation: the most a request can cost, reserved in the requestor's
/// escrow before any node is called. Pure arithmetic.
enum Reservation {
    /// The highest worst-case cost over the first `attempts` candidates: a failover
    /// re-reads the prompt and the output so far, so the input may count twice over.
    static func worstCase(_ candidates: [Candidate], inputBound: Int, maxTokens: Int, attempts: Int) throws -> UInt64 {
        var reserve: UInt64 = 0
        for c in candidates.prefix(attempts) {
            let worst = try Pricing.cost(inputTokens: UInt64(2 * inputBound + maxTokens), outputTokens: UInt64(maxTokens),
                                         priceIn: c.offer.priceIn, priceOut: c.offer.priceOut)
            reserve = max(reserve, worst.units)
        }
        return reserve
    }
}

/// Escrow reserved by requests in flight and charged but not yet settled.
final class EscrowBook: @unchecked Sendable {
    // Invariant: mutable state only under `lock`.
    private let lock = NSLock()
    private var reserved: [Address: UInt64] = [:]
    private var unsettled: [Address: UInt64] = [:]
    private var cache: [Address: (escrow: UInt64, at: UInt64)] = [:]

    init(unsettled: [Address: UInt64]) { self.unsettled = unsettled }

    func cached(_ a: Address, now: UInt64) -> UInt64? {
        lock.withLock { cache[a].flatMap { now < $0.at + 1_000 ? $0.escrow : nil } }
    }

    func remember(_ a: Address, escrow: UInt64, now: UInt64) { lock.withLock { cache[a] = (escrow, now) } }

    /// Reserves `amount` if the escrow not already committed covers it.
    func reserve(_ a: Address, _ amount: UInt64, escrow: UInt64) -> Bool {
        lock.withLock {
            let used = (reserved[a] ?? 0) &+ (unsettled[a] ?? 0)
            guard used <= escrow, amount <= escrow - used else { return false }
            reserved[a, default: 0] += amount
            return true
        }
    }

    /// Ends a reservation, recording `charge` as unsettled.
    func release(_ a: Address, _ amount: UInt64, charge: UInt64) {
        lock.withLock {
            reserved[a] = (reserved[a] ?? amount) - amount
            if charge > 0 { unsettled[a, default: 0] += charge }
        }
    }

    /// A charge reached the ledger (or was refused): it no longer counts here.
    func settled(_ a: Address, _ charge: UInt64) {
        lock.withLock {
            unsettled[a] = (unsettled[a] ?? 0) >= charge ? unsettled[a]! - charge : 0
            cache[a] = nil
        }
    }
}

