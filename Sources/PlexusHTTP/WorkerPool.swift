import Foundation

/// Threads that run blocking work (generation) off the server's event loops.
/// Threads start on demand up to `limit` and then wait for more work, so a
/// request costs a hand-off to a waiting thread, not a new thread.
public final class WorkerPool: @unchecked Sendable {
    // Invariant: `jobs`, `idle` and `threads` only under `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var idle = 0
    private var threads = 0
    public let limit: Int
    private let name: String

    public init(limit: Int, name: String) {
        self.limit = max(1, limit)
        self.name = name
    }

    /// Runs `job` on a pool thread.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        let waiting = jobs.count - head
        let spawn = waiting > idle && threads < limit
        if spawn { threads += 1 }
        condition.signal()
        condition.unlock()
        if spawn {
            let t = Thread { [self] in loop() }
            t.name = name
            t.start()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while head == jobs.count {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            job()
        }
    }
}
