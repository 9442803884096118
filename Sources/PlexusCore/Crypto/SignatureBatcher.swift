import Foundation
import Synchronization

/// Verifies signatures for concurrent tasks together. The first caller
/// starts a batch; callers that arrive before it runs, or while it works, are
/// verified with it or in the next one, as in a group commit. A lone request
/// costs one verification (with its key prepared once and kept), and under
/// load the batch verifier shares its work across requests. Answers equal
/// `Address.verifies` for every signature (a failing batch is checked one by one).
public final class SignatureBatcher: Sendable {
    /// Runs a closure once the work already queued on the caller's thread is
    /// done (on an event loop: after the tasks the same burst of input made), or
    /// returns false where there is no such queue.
    public typealias Later = @Sendable (@escaping @Sendable () -> Void) -> Bool

    private typealias Item = (signature: [UInt8], publicKey: [UInt8], message: [UInt8])
    private let state = Mutex<(pending: [(Item, CheckedContinuation<Bool, Never>)], running: Bool)>(([], false))
    private let cache: Ed25519.KeyCache
    private let later: Later?
    /// Most signatures verified in one batch.
    public let maxBatch: Int

    /// With `later`, the first caller's batch runs after the work queued with
    /// it, so that requests read together are verified together.
    public init(keyCapacity: Int = 1_024, maxBatch: Int = Ed25519.maxBatch, later: Later? = nil) {
        cache = Ed25519.KeyCache(capacity: keyCapacity)
        self.maxBatch = max(1, maxBatch)
        self.later = later
    }

    /// Whether `signature` by `key` over `message` is valid.
    public func verify(_ signature: Signature, by key: Address, over message: [UInt8]) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let run = state.withLock { s -> Bool in
                s.pending.append(((signature.bytes, key.bytes, message), c))
                if s.running { return false }
                s.running = true
                return true
            }
            if run, later?({ self.drain() }) != true { drain() }
        }
    }

    /// Whether `signature` by `key` over `message` is valid, checked now on
    /// this thread (with the batcher's prepared keys), not batched.
    public func verifyNow(_ signature: Signature, by key: Address, over message: [UInt8]) -> Bool {
        Ed25519.verify(batch: [(signature.bytes, key.bytes, message)], cache: cache)[0]
    }

    private func drain() {
        while true {
            let batch = state.withLock { s -> [(Item, CheckedContinuation<Bool, Never>)] in
                let b = Array(s.pending.prefix(maxBatch))
                s.pending.removeFirst(b.count)
                if b.isEmpty { s.running = false }
                return b
            }
            if batch.isEmpty { return }
            let results = Ed25519.verify(batch: batch.map(\.0), cache: cache)
            for (i, (_, c)) in batch.enumerated() { c.resume(returning: results[i]) }
        }
    }
}
