import PlexusCore

/// The gateway's limits per API key (`gateway start --key-rps/--key-burst/--key-concurrency`).
public typealias KeyLimits = RateLimits

extension RateLimiter where Client == Hash256 {
    /// Admits a request of API key `key` or throws the 429 that answers it.
    func admitKey(_ key: Hash256) throws {
        switch admit(key) {
        case .admitted: return
        case let .tooFast(retryAfter):
            throw OpenAIError(429, "requests", "rate_limit_exceeded", "This API key is over its request rate; retry in \(retryAfter) s.", retryAfter: retryAfter)
        case .tooMany:
            throw OpenAIError(429, "requests", "rate_limit_exceeded", "This API key has as many requests in flight as it may; retry when one ends.", retryAfter: 1)
        }
    }
}
