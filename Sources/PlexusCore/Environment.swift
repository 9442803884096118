import Foundation

/// A source of wall-clock time, injected so that logic stays testable.
public protocol WallClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMillis() -> UInt64
}

/// The system clock.
public struct SystemClock: WallClock {
    public init() {}
    public func nowMillis() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    }
}

/// SplitMix64: a small, fast, seedable generator for tests, simulations and
/// benchmarks. Never used for keys.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The user's home directory as the shell sees it: `$HOME` when set (what `~` expands to),
/// else the account's home from the system (Foundation's `NSHomeDirectory()` on Linux reads
/// the password database and ignores `$HOME`, so `~/.plexus` in a shell and in Plexus could differ).
public enum UserHome {
    public static var path: String {
        if let h = ProcessInfo.processInfo.environment["HOME"], !h.isEmpty { return h }
        return NSHomeDirectory()
    }
}
