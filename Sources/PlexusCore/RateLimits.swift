import Foundation
import Synchronization

/// How much one client may ask of a server: a request rate (a token bucket that holds
/// `burst` requests and refills at `requestsPerSecond`) and requests in flight at once.
/// A gateway keeps them per API key, a node per gateway, so that one flooding client
/// cannot crowd out the others. 0 turns a limit off.
public struct RateLimits: Sendable, Hashable {
    public var requestsPerSecond: Double
    public var burst: Double
    public var concurrency: Int

    public init(requestsPerSecond: Double = 50, burst: Double = 100, concurrency: Int = 32) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.concurrency = concurrency
    }

    /// No limits (a local network's single requestor, benchmarks).
    public static let none = RateLimits(requestsPerSecond: 0, burst: 0, concurrency: 0)
}

/// The per-client books: pure given the time (`now` in milliseconds).
public struct RateBuckets<Client: Hashable> {
    public struct Bucket {
        var tokens: Double
        var refilledMillis: UInt64
        var inFlight = 0
    }

    public let limits: RateLimits
    public private(set) var buckets: [Client: Bucket] = [:]

    public init(limits: RateLimits) { self.limits = limits }

    public enum Verdict: Equatable, Sendable {
        case admitted
        /// Over the rate: a token comes back after this many seconds.
        case tooFast(retryAfter: Int)
        /// As many requests in flight as the client may have.
        case tooMany
    }

    /// Takes a request of `client` at `now`, or says why not (and changes nothing then).
    public mutating func admit(_ client: Client, now: UInt64) -> Verdict {
        var b = buckets[client] ?? Bucket(tokens: limits.burst, refilledMillis: now)
        let elapsed = Double(now >= b.refilledMillis ? now - b.refilledMillis : 0) / 1_000
        b.tokens = min(limits.burst, b.tokens + elapsed * limits.requestsPerSecond)
        b.refilledMillis = now
        guard limits.concurrency == 0 || b.inFlight < limits.concurrency else {
            buckets[client] = b
            return .tooMany
        }
        if limits.requestsPerSecond > 0 {
            guard b.tokens >= 1 else {
                buckets[client] = b
                return .tooFast(retryAfter: max(1, Int(((1 - b.tokens) / limits.requestsPerSecond).rounded(.up))))
            }
            b.tokens -= 1
        }
        b.inFlight += 1
        buckets[client] = b
        return .admitted
    }

    /// A request of `client` ended.
    public mutating func finish(_ client: Client) {
        guard var b = buckets[client] else { return }
        b.inFlight = max(0, b.inFlight - 1)
        buckets[client] = b
    }

    /// Forgets clients idle long enough to have a full bucket and nothing in flight.
    public mutating func prune(now: UInt64) {
        let full = limits.requestsPerSecond > 0 ? UInt64(limits.burst / limits.requestsPerSecond * 1_000) : .max
        buckets = buckets.filter { $0.value.inFlight > 0 || now < $0.value.refilledMillis &+ full }
    }
}

/// A server's limiter: the books under a lock, on the system clock.
public final class RateLimiter<Client: Hashable & Sendable>: Sendable {
    private let books: Mutex<(buckets: RateBuckets<Client>, admitted: Int)>

    public init(limits: RateLimits) { books = Mutex((RateBuckets(limits: limits), 0)) }

    /// Takes a request of `client` now, or says why not; an admitted request is `finish`ed when it ends.
    public func admit(_ client: Client) -> RateBuckets<Client>.Verdict {
        let now = SystemClock().nowMillis()
        return books.withLock { b in
            b.admitted += 1
            if b.admitted % 4_096 == 0 { b.buckets.prune(now: now) }
            return b.buckets.admit(client, now: now)
        }
    }

    public func finish(_ client: Client) { books.withLock { $0.buckets.finish(client) } }
}
