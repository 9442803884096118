import Foundation

/// A value behind a lock.
public final class Locked<T: Sendable>: @unchecked Sendable {
    // Invariant: `stored` is read and written only under `lock`.
    private var stored: T
    private let lock = NSLock()
    public init(_ v: T) { stored = v }
    public var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    public func update<R>(_ f: (inout T) -> R) -> R { lock.withLock { f(&stored) } }
}
