import PlexusCore
import Testing

/// The per-client books (a gateway's per key, a node's per gateway): rate by token bucket, requests in flight, keys apart, limits off.
@Suite struct RateLimitsTests {
    static let a = Hash256.of([1]), b = Hash256.of([2])

    static func limits(rps: Double, burst: Double, concurrency: Int) -> RateLimits {
        RateLimits(requestsPerSecond: rps, burst: burst, concurrency: concurrency)
    }

    @Test func aBurstThenTheRateWithRetryAfter() {
        var books = RateBuckets<Hash256>(limits: Self.limits(rps: 2, burst: 3, concurrency: 0))
        for _ in 0..<3 { #expect(books.admit(Self.a, now: 1_000) == .admitted) }
        #expect(books.admit(Self.a, now: 1_000) == .tooFast(retryAfter: 1))
        // Another key has a bucket of its own.
        #expect(books.admit(Self.b, now: 1_000) == .admitted)
        // Half a second refills one token at 2 per second.
        #expect(books.admit(Self.a, now: 1_500) == .admitted)
        #expect(books.admit(Self.a, now: 1_500) == .tooFast(retryAfter: 1))
        // Never more than the burst, however long the key waited.
        for _ in 0..<3 { #expect(books.admit(Self.a, now: 100_000) == .admitted) }
        #expect(books.admit(Self.a, now: 100_000) != .admitted)
        // A slow rate says how long to wait.
        var slow = RateBuckets<Hash256>(limits: Self.limits(rps: 0.1, burst: 1, concurrency: 0))
        #expect(slow.admit(Self.a, now: 0) == .admitted)
        #expect(slow.admit(Self.a, now: 0) == .tooFast(retryAfter: 10))
    }

    @Test func requestsInFlightAreCappedAndGiveTheirPlaceBack() {
        var books = RateBuckets<Hash256>(limits: Self.limits(rps: 0, burst: 1, concurrency: 2))
        #expect(books.admit(Self.a, now: 0) == .admitted)
        #expect(books.admit(Self.a, now: 0) == .admitted)
        #expect(books.admit(Self.a, now: 0) == .tooMany)
        #expect(books.admit(Self.b, now: 0) == .admitted)
        books.finish(Self.a)
        #expect(books.admit(Self.a, now: 0) == .admitted)
        // A refusal takes no token and no place.
        var both = RateBuckets<Hash256>(limits: Self.limits(rps: 1, burst: 1, concurrency: 1))
        #expect(both.admit(Self.a, now: 0) == .admitted)
        #expect(both.admit(Self.a, now: 5_000) == .tooMany)
        both.finish(Self.a)
        #expect(both.admit(Self.a, now: 5_000) == .admitted)
    }

    @Test func noLimitsMeansNone() {
        var books = RateBuckets<Hash256>(limits: .none)
        for _ in 0..<10_000 { #expect(books.admit(Self.a, now: 0) == .admitted) }
    }

    @Test func idleKeysAreForgottenButNotBusyOnes() {
        var books = RateBuckets<Hash256>(limits: Self.limits(rps: 10, burst: 10, concurrency: 5))
        _ = books.admit(Self.a, now: 0)
        books.finish(Self.a)
        _ = books.admit(Self.b, now: 0)
        books.prune(now: 60_000)
        #expect(books.buckets[Self.a] == nil && books.buckets[Self.b] != nil)
    }
}
