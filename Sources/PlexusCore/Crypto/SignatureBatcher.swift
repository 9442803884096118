import Foundation
import Synchronization

/// Verifies signatures for concurrent tasks together. The first caller
/// verifies at once; callers that arrive while it works wait and are verified
/// in the next batch, as in a group commit. A lone request costs one
/// verification (with its key prepared once and kept), and under load the
/// batch verifier shares its work across requests. Answers equal
/// `Address.verifies` for every signature (a failing batch is checked one by one).
public final class SignatureBatcher: Sendable {
    private typealias Item = (signature: [UInt8], publicKey: [UInt8], message: [UInt8])
    private let state = Mutex<(pending: [(Item, CheckedContinuation<Bool, Never>)], running: Bool)>(([], false))
    private let cache: Ed25519.KeyCache
    /// Most signatures verified in one batch.
    public let maxBatch: Int

    public init(keyCapacity: Int = 1_024, maxBatch: Int = Ed25519.maxBatch) {
        cache = Ed25519.KeyCache(capacity: keyCapacity)
        self.maxBatch = max(1, maxBatch)
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
            if run { drain() }
        }
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
