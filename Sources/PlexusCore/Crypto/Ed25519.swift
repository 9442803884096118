import CEd25519
import Crypto

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
    public static func verify(batch items: [(signature: [UInt8], publicKey: [UInt8], message: [UInt8])]) -> [Bool] {
        var out = [Bool]()
        out.reserveCapacity(items.count)
        var start = 0
        while start < items.count {
            let slice = items[start..<min(items.count, start + maxBatch)]
            if verifyAll(slice) {
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

    private static func verifyAll(_ items: ArraySlice<(signature: [UInt8], publicKey: [UInt8], message: [UInt8])>) -> Bool {
        let n = items.count
        var r = [UInt8](), a = [UInt8](), s = [UInt8](), k = [UInt8](), z = [UInt8]()
        r.reserveCapacity(32 * n); a.reserveCapacity(32 * n); s.reserveCapacity(32 * n)
        k.reserveCapacity(64 * n); z.reserveCapacity(16 * n)
        var rng = SystemRandomNumberGenerator()
        for item in items {
            guard item.signature.count == 64, item.publicKey.count == 32 else { return false }
            r.append(contentsOf: item.signature[0..<32])
            s.append(contentsOf: item.signature[32..<64])
            a.append(contentsOf: item.publicKey)
            k.append(contentsOf: challenge(signature: item.signature, publicKey: item.publicKey, message: item.message))
            var w0 = rng.next() as UInt64, w1 = rng.next() as UInt64
            if w0 == 0 && w1 == 0 { w0 = 1 }
            withUnsafeBytes(of: &w0) { z.append(contentsOf: $0) }
            withUnsafeBytes(of: &w1) { z.append(contentsOf: $0) }
        }
        return plx_ed25519_verify_batch(n, r, a, s, k, z) == 1
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
