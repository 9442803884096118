import Crypto
@testable import PlexusCore
import CEd25519
import Testing

@Suite struct Ed25519Tests {
    // RFC 8032, section 7.1, TEST 1 (empty message).
    let rfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    let rfcPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    let rfcSignature = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"

    @Test func rfc8032VectorVerifies() throws {
        let key = try KeyPair(seed: Hex.decode(rfcSeed))
        #expect(Hex.encode(key.address.bytes) == rfcPublic)
        #expect(Hex.encode(key.sign([]).bytes) == rfcSignature)
        #expect(Ed25519.verify(signature: try Hex.decode(rfcSignature), publicKey: try Hex.decode(rfcPublic), message: []))
        #expect(!Ed25519.verify(signature: try Hex.decode(rfcSignature), publicKey: try Hex.decode(rfcPublic), message: [0]))
    }

    @Test func agreesWithSwiftCryptoOnRandomSignatures() throws {
        var rng = SeededGenerator(seed: 77)
        var items: [(signature: [UInt8], publicKey: [UInt8], message: [UInt8])] = []
        for i in 0..<200 {
            let key = Curve25519.Signing.PrivateKey()
            let message = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var sig = Array(try key.signature(for: message))
            var msg = message
            var pub = Array(key.publicKey.rawRepresentation)
            switch i % 4 {
            case 1: sig[Int(rng.next() % 64)] ^= UInt8(1 << (rng.next() % 8))
            case 2: msg.append(1)
            case 3: pub = Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
            default: break
            }
            let theirs = (try? Curve25519.Signing.PublicKey(rawRepresentation: pub))?.isValidSignature(sig, for: msg) ?? false
            #expect(Ed25519.verify(signature: sig, publicKey: pub, message: msg) == theirs, "case \(i)")
            #expect(theirs == (i % 4 == 0), "case \(i)")
            items.append((sig, pub, msg))
        }
        let batch = Ed25519.verify(batch: items)
        #expect(batch == (0..<200).map { $0 % 4 == 0 })
        let cache = Ed25519.KeyCache(capacity: 50)
        #expect(Ed25519.verify(batch: items, cache: cache) == batch)
        #expect(Ed25519.verify(batch: items, cache: cache) == batch)
    }

    @Test func allValidBatchesOfEverySizePass() throws {
        for n in [1, 2, 3, 63, 64, 65, 130] {
            let items = (0..<n).map { i -> (signature: [UInt8], publicKey: [UInt8], message: [UInt8]) in
                let key = KeyPair.deterministic("batch-\(i)")
                let msg = Array("message \(i)".utf8)
                return (key.sign(msg).bytes, key.address.bytes, msg)
            }
            #expect(Ed25519.verify(batch: items).allSatisfy { $0 }, "n = \(n)")
            #expect(Ed25519.verify(batch: items, cache: Ed25519.KeyCache()).allSatisfy { $0 }, "n = \(n)")
            var bad = items
            bad[n / 2].message.append(0)
            let result = Ed25519.verify(batch: bad)
            #expect(result.enumerated().allSatisfy { $0.element == ($0.offset != n / 2) }, "n = \(n)")
        }
    }

    /// Signatures by one key share its term in the batch equation; that must
    /// not let a wrong signature hide behind another by the same key.
    @Test func batchesWithRepeatedKeysAnswerAsSingleVerification() throws {
        let keys = (0..<3).map { KeyPair.deterministic("repeat-\($0)") }
        for pattern in 0..<2 {
            // Keys interleaved (i % 3) or in runs of ten.
            let owner = { (i: Int) in pattern == 0 ? i % 3 : (i / 10) % 3 }
            let clean = (0..<100).map { i -> (signature: [UInt8], publicKey: [UInt8], message: [UInt8]) in
                let msg = Array("repeated \(i)".utf8)
                return (keys[owner(i)].sign(msg).bytes, keys[owner(i)].address.bytes, msg)
            }
            var damaged = clean
            // Two signatures by one key swapped between their messages.
            let (a, b) = (3, 3 + (pattern == 0 ? 3 : 1))
            (damaged[a].signature, damaged[b].signature) = (damaged[b].signature, damaged[a].signature)
            // A signature attributed to another key of the batch.
            damaged[40].publicKey = keys[(owner(40) + 1) % 3].address.bytes
            // A scalar changed.
            damaged[77].signature[40] ^= 4
            for items in [clean, damaged] {
                let single = items.map { Ed25519.verify(signature: $0.signature, publicKey: $0.publicKey, message: $0.message) }
                #expect(Ed25519.verify(batch: items) == single, "pattern \(pattern)")
                #expect(Ed25519.verify(batch: items, cache: Ed25519.KeyCache()) == single, "pattern \(pattern)")
            }
            #expect(Ed25519.verify(batch: damaged).filter { !$0 }.count == 4)
        }
    }

    @Test func malleatedAndMalformedSignaturesAreRejected() throws {
        let key = KeyPair.deterministic("m")
        let msg = Array("pay 5".utf8)
        let sig = key.sign(msg).bytes
        // s + L: the classic malleation; must be refused as non-canonical.
        let l: [UInt8] = try Hex.decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
        var s = Array(sig[32..<64])
        var carry = 0
        for i in 0..<32 {
            let v = Int(s[i]) + Int(l[i]) + carry
            s[i] = UInt8(v & 0xff)
            carry = v >> 8
        }
        #expect(!Ed25519.verify(signature: Array(sig[0..<32]) + s, publicKey: key.address.bytes, message: msg))
        // A public key that is not on the curve (y = 2 has no x).
        var notPoint = [UInt8](repeating: 0, count: 32)
        notPoint[0] = 2
        #expect(!Ed25519.verify(signature: sig, publicKey: notPoint, message: msg))
        #expect(!Ed25519.verify(signature: Array(sig.prefix(63)), publicKey: key.address.bytes, message: msg))
        // Small-order keys (the all-zero treasury key is one) would verify any
        // message under the cofactored rule; they are refused.
        #expect(!Ed25519.verify(signature: [UInt8](repeating: 0, count: 64), publicKey: [UInt8](repeating: 0, count: 32), message: msg))
        var identity = [UInt8](repeating: 0, count: 32)
        identity[0] = 1
        #expect(!Ed25519.verify(signature: identity + [UInt8](repeating: 0, count: 32), publicKey: identity, message: msg))
        #expect(Ed25519.PreparedKey(identity) == nil)
        #expect(Ed25519.PreparedKey(notPoint) == nil)
        #expect(Ed25519.verify(batch: [(identity + [UInt8](repeating: 0, count: 32), identity, msg)], cache: Ed25519.KeyCache()) == [false])
    }

    /// The CPU-specific build and the generic one answer alike, for good and damaged signatures, alone and in batches.
    @Test func cpuSpecificAndGenericBuildsAgree() throws {
        var rng = SeededGenerator(seed: 5)
        var r = [UInt8](), a = [UInt8](), s = [UInt8](), k = [UInt8](), z = [UInt8]()
        var singles = 0
        for i in 0..<120 {
            let key = KeyPair.deterministic("cpu-\(i % 7)")
            var msg = Array("message \(i)".utf8)
            var sig = key.sign(msg).bytes
            switch i % 4 {
            case 1: sig[Int(rng.next() % 64)] ^= UInt8(1 << (rng.next() % 8))
            case 2: msg.append(UInt8(truncatingIfNeeded: i))
            default: break
            }
            let ki = Ed25519.challenge(signature: sig, publicKey: key.address.bytes, message: msg)
            var one = [UInt8](repeating: 0, count: 16)
            one[0] = 1
            let fast = plx_ed25519_verify_batch(1, Array(sig[0..<32]), key.address.bytes, Array(sig[32..<64]), ki, one)
            let generic = plx_ed25519_generic_verify_batch(1, Array(sig[0..<32]), key.address.bytes, Array(sig[32..<64]), ki, one)
            #expect(fast == generic, "signature \(i)")
            #expect((fast == 1) == key.address.verifies(try Signature(bytes: sig), over: msg))
            if fast == 1 { singles += 1 }
            if i % 4 != 1 && i % 4 != 2 {
                r += sig[0..<32]; a += key.address.bytes; s += sig[32..<64]; k += ki
                z += (0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        #expect(singles == 60)
        let n = r.count / 32
        #expect(plx_ed25519_verify_batch(n, r, a, s, k, z) == 1 && plx_ed25519_generic_verify_batch(n, r, a, s, k, z) == 1)
        s[5] ^= 1
        #expect(plx_ed25519_verify_batch(n, r, a, s, k, z) == 0 && plx_ed25519_generic_verify_batch(n, r, a, s, k, z) == 0)
    }
}
