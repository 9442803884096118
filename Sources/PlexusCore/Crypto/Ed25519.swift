import CEd25519
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ed25519 signature verification with the cofactored equation (ZIP-215 rules),
/// single and batched.
///
/// Signing stays with swift-crypto. Verification is Plexus's own because a
/// ledger needs two things a general library does not promise: batch
/// verification (several times faster per signature, which the block
/// throughput depends on) and *identical* answers from the batch and the
/// single path whatever the batch composition, so that two replicas never
/// disagree about a block. The cofactored equation gives both; standard
/// signatures verify under either rule.
public enum Ed25519 {
    /// Largest batch handed to the verifier at once.
    public static let maxBatch = 64

    /// Whether `signature` by `publicKey` over `message` is valid.
    public static func verify(signature: [UInt8], publicKey: [UInt8], message: [UInt8]) -> Bool {
        guard signature.count == 64, publicKey.count == 32 else { return false }
        let k = challenge(signature: signature, publicKey: publicKey, message: message)
        let r = Array(signature[0..<32]), s = Array(signature[32..<64])
        var z = [UInt8](repeating: 0, count: 16)
        z[0] = 1
        return plx_ed25519_verify_batch(1, r, publicKey, s, k, z) == 1
    }

    /// Validity of each `(signature, publicKey, message)`, in order. Verifies in
    /// batches with random weights; a batch that fails is checked one by one.
    /// With a `cache`, public keys seen before skip decoding and table building.
    public static func verify(batch items: [(signature: [UInt8], publicKey: [UInt8], message: [UInt8])],
                              cache: KeyCache? = nil) -> [Bool] {
        var out = [Bool]()
        out.reserveCapacity(items.count)
        var start = 0
        while start < items.count {
            let slice = items[start..<min(items.count, start + maxBatch)]
            if verifyAll(slice, cache: cache) {
                out.append(contentsOf: repeatElement(true, count: slice.count))
            } else {
                for item in slice {
                    out.append(verify(signature: item.signature, publicKey: item.publicKey, message: item.message))
                }
            }
            start += slice.count
        }
        return out
    }

    private static func verifyAll(_ items: ArraySlice<(signature: [UInt8], publicKey: [UInt8], message: [UInt8])>,
                                  cache: KeyCache?) -> Bool {
        let n = items.count
        var prepared: [PreparedKey] = []
        if let cache {
            prepared.reserveCapacity(n)
            for item in items {
                guard let key = cache.prepared(item.publicKey) else { return false }
                prepared.append(key)
            }
        }
        var r = [UInt8](), a = [UInt8](), s = [UInt8](), k = [UInt8](), z = [UInt8]()
        r.reserveCapacity(32 * n); a.reserveCapacity(32 * n); s.reserveCapacity(32 * n)
        k.reserveCapacity(64 * n); z.reserveCapacity(16 * n)
        for item in items {
            guard item.signature.count == 64, item.publicKey.count == 32 else { return false }
            r.append(contentsOf: item.signature[0..<32])
            s.append(contentsOf: item.signature[32..<64])
            a.append(contentsOf: item.publicKey)
            k.append(contentsOf: challenge(signature: item.signature, publicKey: item.publicKey, message: item.message))
        }
        if n == 1 {
            // One signature: its own equation, no weight needed.
            z = [UInt8](repeating: 0, count: 16)
            z[0] = 1
        } else {
            // Random 128-bit weights, drawn in one go; a zero weight becomes one.
            z = randomBytes(16 * n)
            for i in 0..<n where z[(16 * i)..<(16 * i + 16)].allSatisfy({ $0 == 0 }) { z[16 * i] = 1 }
        }
        if prepared.isEmpty {
            return plx_ed25519_verify_batch(n, r, a, s, k, z) == 1
        }
        let tables: [UnsafePointer<UInt8>?] = prepared.map { UnsafePointer($0.table) }
        let ok = plx_ed25519_verify_batch_prepared(n, r, tables, s, k, z) == 1
        withExtendedLifetime(prepared) {}
        return ok
    }

    /// `count` bytes from the system's secure random source.
    static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var rng = SystemRandomNumberGenerator()
        var filled = 0
        #if canImport(Glibc)
        while filled < count {
            let n = min(256, count - filled)
            guard out.withUnsafeMutableBytes({ getentropy($0.baseAddress! + filled, n) }) == 0 else { break }
            filled += n
        }
        #endif
        while filled < count {
            withUnsafeBytes(of: rng.next() as UInt64) { w in
                for b in w where filled < count {
                    out[filled] = b
                    filled += 1
                }
            }
        }
        return out
    }

    /// A public key decoded and expanded for fast verification.
    public final class PreparedKey: @unchecked Sendable {
        // Invariant: `table` is written once in init and only read afterwards.
        let table: UnsafeMutablePointer<UInt8>

        /// Nil if `publicKey` is not a valid, non-small-order curve point.
        public init?(_ publicKey: [UInt8]) {
            guard publicKey.count == 32 else { return nil }
            let t = UnsafeMutablePointer<UInt8>.allocate(capacity: Int(PLX_ED25519_KEY_TABLE_BYTES))
            guard plx_ed25519_prepare_key(publicKey, t) == 1 else {
                // Fail before `table` is set, so that deinit never runs for it.
                t.deallocate()
                return nil
            }
            table = t
        }

        deinit { table.deallocate() }
    }

    /// A bounded, thread-safe cache of prepared keys; when full it starts over.
    public final class KeyCache: @unchecked Sendable {
        // Invariant: `keys` is only touched while holding `lock`.
        private let lock = NSLock()
        private var keys: [[UInt8]: PreparedKey] = [:]
        /// Most keys held (each takes about 2.6 KB).
        public let capacity: Int

        public init(capacity: Int = 16_384) { self.capacity = max(1, capacity) }

        /// The prepared form of `publicKey`, or nil if it can never verify.
        public func prepared(_ publicKey: [UInt8]) -> PreparedKey? {
            if let hit = lock.withLock({ keys[publicKey] }) { return hit }
            guard let key = PreparedKey(publicKey) else { return nil }
            lock.withLock {
                if keys.count >= capacity { keys.removeAll(keepingCapacity: true) }
                keys[publicKey] = key
            }
            return key
        }
    }

    /// SHA-512(R || A || M), the per-signature challenge before reduction mod L.
    static func challenge(signature: [UInt8], publicKey: [UInt8], message: [UInt8]) -> [UInt8] {
        var h = SHA512()
        h.update(data: signature[0..<32])
        h.update(data: publicKey)
        h.update(data: message)
        return Array(h.finalize())
    }
}
