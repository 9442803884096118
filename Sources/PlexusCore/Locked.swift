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
    public func update<R>(_ f: (inout T) throws -> R) rethrows -> R { try lock.withLock { try f(&stored) } }
}

/// A lock held across suspensions: one body at a time, the others suspended (not blocked) in
/// the order they came.
public final class AsyncLock: @unchecked Sendable {
    // Invariant: `held` and `waiting` are read and written only under `lock`.
    private let lock = NSLock()
    private var held = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func withLock<T>(_ body: () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { () -> Bool in
                guard held else {
                    held = true
                    return true
                }
                waiting.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    private func release() {
        let next = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            guard !waiting.isEmpty else {
                held = false
                return nil
            }
            return waiting.removeFirst()
        }
        next?.resume()
    }
}
