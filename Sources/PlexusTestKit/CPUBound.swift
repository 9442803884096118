import Foundation
import Synchronization
import Testing

/// A test that keeps a core busy for many seconds without suspending (the ledger's property
/// tests, say). Swift Testing starts every test at once on the cooperative pool, which has a
/// thread per core: a handful of such tests took both threads of a 2-core machine for minutes,
/// and every network test's continuations waited behind them until its timeouts fired. Tests
/// with this trait run one at a time (a core's worth fewer than the machine has, at least one),
/// so the other threads stay free for the rest.
public struct CPUBound: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Gate test cases only: a test's own scope (and a suite's) encloses its cases, and holding
        // the gate there would leave its cases waiting for it.
        guard testCase != nil else { return try await function() }
        await Self.gate.enter()
        defer { Self.gate.leave() }
        try await function()
    }

    static let gate = AsyncGate(width: max(1, ProcessInfo.processInfo.activeProcessorCount - 1))
}

extension Trait where Self == CPUBound {
    /// Runs the test's cases one at a time beside the other tests (see `CPUBound`).
    public static var cpuBound: Self { CPUBound() }
}

/// A semaphore that suspends rather than blocks.
final class AsyncGate: Sendable {
    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(width: Int) { state = Mutex(State(free: width)) }

    func enter() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                s.waiting.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiting.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiting.removeFirst()
        }
        next?.resume()
    }
}
