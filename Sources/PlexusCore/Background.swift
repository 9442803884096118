import Dispatch
import Synchronization

/// Work started on another thread now and collected later with a blocking
/// `wait()`: for overlapping a short computation with a blocking call that
/// the current thread makes meanwhile (a disk sync), where suspending and
/// resuming would cost more than the computation.
public final class Background<Value: Sendable>: Sendable {
    private let result = Mutex<Value?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    public init(_ work: @escaping @Sendable () -> Value) {
        DispatchQueue.global().async { [self] in
            let v = work()
            result.withLock { $0 = v }
            ready.signal()
        }
    }

    /// The work's value, once it is done (blocks until then).
    public func wait() -> Value {
        ready.wait()
        ready.signal()
        return result.withLock { $0! }
    }
}
