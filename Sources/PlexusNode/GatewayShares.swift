import Foundation
import PlexusCore
import PlexusLedger
import Synchronization

/// A node's slots shared fairly among the gateways that send it work: pure given the time
/// (`now` in milliseconds).
///
/// A gateway alone may fill every slot. While others are active too (a request in flight,
/// or one within `activeMillis`), each is owed a fair share, `slots / active` rounded up:
/// a gateway at or past its share is admitted only if that still leaves a free slot for
/// every other active gateway below its share. So a gateway that floods the node cannot
/// keep another's requests out, and no slot stays idle while only one gateway wants it.
/// On top of that, optional fixed limits per gateway (`RateLimits`: a rate and a cap in
/// flight), set by the operator.
struct GatewayShares {
    let slots: Int
    let activeMillis: UInt64
    private(set) var limits: RateBuckets<Address>
    private(set) var inFlight: [Address: Int] = [:]
    private(set) var lastSeen: [Address: UInt64] = [:]
    private(set) var total = 0

    init(slots: Int, perGateway: RateLimits, activeMillis: UInt64 = 5_000) {
        self.slots = slots
        self.activeMillis = activeMillis
        limits = RateBuckets(limits: perGateway)
    }

    enum Verdict: Equatable {
        case admitted
        /// Every slot taken, or the rest kept for other gateways below their share.
        case full
        /// Past this gateway's own rate or cap in flight.
        case limited(RateBuckets<Address>.Verdict)
    }

    /// The gateways active at `now` (`gateway` among them).
    func active(with gateway: Address, now: UInt64) -> [Address] {
        var out = lastSeen.compactMap { g, seen in g != gateway && (inFlight[g, default: 0] > 0 || now < seen &+ activeMillis) ? g : nil }
        out.append(gateway)
        return out
    }

    /// Takes a request of `gateway` at `now`, or says why not (and then changes nothing but
    /// the note that `gateway` wants slots: a gateway turned away from a full node is owed
    /// its share as the slots free up).
    mutating func admit(_ gateway: Address, now: UInt64) -> Verdict {
        guard total < slots else {
            noteDemand(gateway, now: now)
            return .full
        }
        let active = active(with: gateway, now: now)
        let share = (slots + active.count - 1) / active.count
        if inFlight[gateway, default: 0] >= share {
            let owed = active.filter { $0 != gateway && inFlight[$0, default: 0] < share }.count
            guard slots - total - 1 >= owed else {
                noteDemand(gateway, now: now)
                return .full
            }
        }
        let verdict = limits.admit(gateway, now: now)
        guard verdict == .admitted else { return .limited(verdict) }
        inFlight[gateway, default: 0] += 1
        total += 1
        noteDemand(gateway, now: now)
        return .admitted
    }

    private mutating func noteDemand(_ gateway: Address, now: UInt64) {
        lastSeen[gateway] = now
        if lastSeen.count > 1_024 { lastSeen = lastSeen.filter { inFlight[$0.key, default: 0] > 0 || now < $0.value &+ activeMillis } }
    }

    /// A request of `gateway` ended at `now`.
    mutating func finish(_ gateway: Address, now: UInt64) {
        guard let n = inFlight[gateway], n > 0 else { return }
        inFlight[gateway] = n == 1 ? nil : n - 1
        lastSeen[gateway] = now
        total -= 1
        limits.finish(gateway)
    }
}

/// The node's admission: `GatewayShares` under a lock, on the system clock.
final class Admission: Sendable {
    private let shares: Mutex<GatewayShares>

    init(slots: Int, perGateway: RateLimits) { shares = Mutex(GatewayShares(slots: slots, perGateway: perGateway)) }

    /// Takes a request of `gateway` or throws the 429 that answers it.
    func enter(_ gateway: Address) throws {
        let now = SystemClock().nowMillis()
        switch shares.withLock({ $0.admit(gateway, now: now) }) {
        case .admitted: return
        case .full:
            throw APIError(.tooManyRequests, .busy, "the node's slots are taken (or kept for other gateways' fair share); retry shortly", retryAfter: 1)
        case let .limited(.tooFast(retryAfter)):
            throw APIError(.tooManyRequests, .busy, "this gateway is over its request rate at this node; retry in \(retryAfter) s", retryAfter: retryAfter)
        case .limited:
            throw APIError(.tooManyRequests, .busy, "this gateway has as many requests in flight at this node as it may; retry shortly", retryAfter: 1)
        }
    }

    func leave(_ gateway: Address) {
        let now = SystemClock().nowMillis()
        shares.withLock { $0.finish(gateway, now: now) }
    }

    var current: Int { shares.withLock { $0.total } }
}
