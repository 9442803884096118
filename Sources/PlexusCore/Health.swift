/// One thing a server's `/health` finds wrong: which part, and why, in words an operator
/// can act on. A server with any answers 503 with `"status": "unhealthy"` and the list.
public struct HealthProblem: Codable, Sendable, Hashable {
    public var component: String
    public var reason: String

    public init(_ component: String, _ reason: String) {
        self.component = component
        self.reason = reason
    }

    /// "ok" or "unhealthy", and the HTTP status `/health` answers with, for `problems`.
    public static func verdict(_ problems: [HealthProblem]) -> (status: String, code: Int) {
        problems.isEmpty ? ("ok", 200) : ("unhealthy", 503)
    }

    /// How long ago `millis` was, in whole seconds, for a reason's text.
    public static func secondsAgo(_ millis: UInt64, now: UInt64) -> UInt64 { (now >= millis ? now - millis : 0) / 1_000 }
}
