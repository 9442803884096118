import CPlexusKernels
import Foundation
import Synchronization

/// A fixed set of threads that run one job at a time, each taking its own
/// part: the caller runs part 0 and waits, spinning, for the others.
///
/// A forward pass has a handful of parallel steps per layer, each a few
/// microseconds long, so the workers spin between jobs (and park after about
/// a millisecond without work) instead of being woken through the kernel.
/// Pools are shared per thread count and live for the whole process; one job
/// runs at a time per pool.
final class WorkerPool: @unchecked Sendable {
    // Invariant: `job` is written only by the caller holding `running`, before
    // `generation` is bumped (release) and read by workers after they observe it (acquire).
    let size: Int
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let condition = NSCondition()
    private let running = Mutex<Void>(())
    private var job: ((Int, Int) -> Void)?

    private static let pools = Mutex<[Int: WorkerPool]>([:])

    /// The process's pool of `threads` participants (at least 1, at most 64).
    static func shared(threads: Int) -> WorkerPool {
        let n = max(1, min(64, threads))
        return pools.withLock { pools in
            if let p = pools[n] { return p }
            let p = WorkerPool(size: n)
            pools[n] = p
            return p
        }
    }

    private init(size: Int) {
        self.size = size
        for index in 1..<max(1, size) {
            let t = Thread { [self] in self.work(index) }
            t.name = "plexus-engine-\(index)"
            t.start()
        }
    }

    /// Runs `body(part, parts)` for every part in 0..<size, in parallel, and
    /// returns when all have finished.
    func run(_ body: (Int, Int) -> Void) {
        if size == 1 {
            body(0, 1)
            return
        }
        running.withLock { _ in
            withoutActuallyEscaping(body) { body in
                job = body
                pending.store(size - 1, ordering: .relaxed)
                generation.add(1, ordering: .sequentiallyConsistent)
                if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                    condition.lock()
                    condition.broadcast()
                    condition.unlock()
                }
                body(0, size)
                while pending.load(ordering: .acquiring) > 0 { plx_cpu_relax() }
                job = nil
            }
        }
    }

    private func work(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var g = generation.load(ordering: .acquiring)
            while g == seen {
                spins += 1
                if spins < 20_000 {
                    plx_cpu_relax()
                } else {
                    condition.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                    spins = 0
                }
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            job?(index, size)
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// The contiguous share of `0..<count` for `part` of `parts`, with
    /// boundaries at multiples of `align`.
    static func share(_ count: Int, part: Int, parts: Int, align: Int = 8) -> Range<Int> {
        let units = (count + align - 1) / align
        let lo = min(count, units * part / parts * align)
        let hi = min(count, units * (part + 1) / parts * align)
        return lo..<hi
    }
}
