import Foundation

/// Bytes handed from a producer (a generation thread, a socket) to one
/// consumer task. The consumer takes everything written since its last read
/// in one piece, so a burst of small writes (tokens of a fast backend) costs
/// one wake-up and one socket write instead of one per token.
public final class BytePipe: @unchecked Sendable {
    // Invariant: mutable state only under `lock`; at most one consumer waits.
    private let lock = NSLock()
    private var buffer: [UInt8] = []
    private var finished = false
    private var failure: (any Error)?
    private var closed = false
    private var waiter: CheckedContinuation<[UInt8]?, any Error>?

    public init() {}

    /// Appends `bytes`; false once the consumer has gone away (stop producing).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        lock.lock()
        if closed || finished {
            lock.unlock()
            return !closed
        }
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.resume(returning: bytes)
            return true
        }
        buffer += bytes
        lock.unlock()
        return true
    }

    /// Ends the stream; with `error`, the consumer's next read throws it once the buffer is drained.
    public func finish(_ error: (any Error)? = nil) {
        lock.lock()
        guard !finished else { return lock.unlock() }
        finished = true
        failure = error
        let w = waiter
        waiter = nil
        lock.unlock()
        if let w {
            if let error { w.resume(throwing: error) } else { w.resume(returning: nil) }
        }
    }

    /// The consumer went away: later writes return false and a waiting read returns nil.
    public func close() {
        lock.lock()
        closed = true
        buffer = []
        let w = waiter
        waiter = nil
        lock.unlock()
        w?.resume(returning: nil)
    }

    /// Whether the consumer went away.
    public var isClosed: Bool { lock.withLock { closed } }

    /// Everything written since the last read; nil at the end of the stream.
    public func next() async throws -> [UInt8]? {
        if let ready = lock.withLock({ poll() }) { return try ready.get() }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8]?, any Error>) in
            // Checked again under the lock: a writer cannot slip in between the check and the wait.
            let ready = lock.withLock { () -> Result<[UInt8]?, any Error>? in
                if let r = poll() { return r }
                waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    /// Everything until the end of the stream.
    public func collect() async throws -> [UInt8] {
        var out: [UInt8] = []
        while let piece = try await next() { out += piece }
        return out
    }

    /// What a read returns now, if anything (under `lock`).
    private func poll() -> Result<[UInt8]?, any Error>? {
        if !buffer.isEmpty {
            let out = buffer
            buffer = []
            return .success(out)
        }
        if closed { return .success(nil) }
        if finished {
            let f = failure
            failure = nil
            return f.map { .failure($0) } ?? .success(nil)
        }
        return nil
    }
}
