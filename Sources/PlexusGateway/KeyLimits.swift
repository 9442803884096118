import Foundation
import PlexusCore
import Synchronization

/// How much one API key may ask of a gateway: a request rate (a token bucket that
/// holds `burst` requests and refills at `requestsPerSecond`) and requests in flight
/// at once. Past either the gateway answers 429 with `Retry-After`, so that one key
/// flooding the gateway cannot crowd out the others. 0 turns a limit off.
public struct KeyLimits: Sendable, Hashable {
    public var requestsPerSecond: Double = 50
    public var burst: Double = 100
    public var concurrency = 32

    public init() {}

    /// No limits (a local network's single requestor, benchmarks).
    public static let none: KeyLimits = {
        var l = KeyLimits()
        l.requestsPerSecond = 0
        l.concurrency = 0
        return l
    }()
}

/// The per-key books: pure given the time (`now` in milliseconds).
struct KeyBuckets {
    struct Bucket {
        var tokens: Double
        var refilledMillis: UInt64
        var inFlight = 0
    }

    let limits: KeyLimits
    private(set) var buckets: [Hash256: Bucket] = [:]

    init(limits: KeyLimits) { self.limits = limits }

    enum Verdict: Equatable {
        case admitted
        /// Over the rate: a token comes back after this many seconds.
        case tooFast(retryAfter: Int)
        /// As many requests in flight as the key may have.
        case tooMany
    }

    /// Takes a request of `key` at `now`, or says why not (and changes nothing then).
    mutating func admit(_ key: Hash256, now: UInt64) -> Verdict {
        var b = buckets[key] ?? Bucket(tokens: limits.burst, refilledMillis: now)
        let elapsed = Double(now >= b.refilledMillis ? now - b.refilledMillis : 0) / 1_000
        b.tokens = min(limits.burst, b.tokens + elapsed * limits.requestsPerSecond)
        b.refilledMillis = now
        guard limits.concurrency == 0 || b.inFlight < limits.concurrency else {
            buckets[key] = b
            return .tooMany
        }
        if limits.requestsPerSecond > 0 {
            guard b.tokens >= 1 else {
                buckets[key] = b
                return .tooFast(retryAfter: max(1, Int(((1 - b.tokens) / limits.requestsPerSecond).rounded(.up))))
            }
            b.tokens -= 1
        }
        b.inFlight += 1
        buckets[key] = b
        return .admitted
    }

    /// A request of `key` ended.
    mutating func finish(_ key: Hash256) {
        guard var b = buckets[key] else { return }
        b.inFlight = max(0, b.inFlight - 1)
        buckets[key] = b
    }

    /// Forgets keys idle long enough to have a full bucket and nothing in flight.
    mutating func prune(now: UInt64) {
        let full = limits.requestsPerSecond > 0 ? UInt64(limits.burst / limits.requestsPerSecond * 1_000) : .max
        buckets = buckets.filter { $0.value.inFlight > 0 || now < $0.value.refilledMillis &+ full }
    }
}

/// The gateway's per-key limiter (the books under a lock).
final class KeyLimiter: Sendable {
    private let books: Mutex<(buckets: KeyBuckets, admitted: Int)>

    init(limits: KeyLimits) { books = Mutex((KeyBuckets(limits: limits), 0)) }

    /// Admits a request of `key` or throws the 429 that answers it.
    func admit(_ key: Hash256) throws {
        let now = SystemClock().nowMillis()
        let verdict = books.withLock { b -> KeyBuckets.Verdict in
            b.admitted += 1
            if b.admitted % 4_096 == 0 { b.buckets.prune(now: now) }
            return b.buckets.admit(key, now: now)
        }
        switch verdict {
        case .admitted: return
        case let .tooFast(retryAfter):
            throw OpenAIError(429, "requests", "rate_limit_exceeded", "This API key is over its request rate; retry in \(retryAfter) s.", retryAfter: retryAfter)
        case .tooMany:
            throw OpenAIError(429, "requests", "rate_limit_exceeded", "This API key has as many requests in flight as it may; retry when one ends.", retryAfter: 1)
        }
    }

    func finish(_ key: Hash256) { books.withLock { $0.buckets.finish(key) } }
}
