import ArgumentParser
import Crypto
import Dispatch
import Foundation
import PlexusCore

/// What one signature costs: signing, single verification (Plexus's
/// cofactored verifier and BoringSSL's), and batched verification per
/// signature at several batch sizes, with keys prepared once.
struct CryptoBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto", abstract: "Ed25519 signing and verification costs (µs per signature).")

    @Option(name: .long, help: "Signatures per measurement.") var count: Int = 2_000
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Result: Codable {
        var benchmark = "crypto"
        var signatures: Int
        var signUs: Double
        var verifyUs: Double
        var verifyBoringSSLUs: Double
        /// Batch size → µs per signature (prepared keys, four signers).
        var batchVerifyUs: [String: Double]

        enum CodingKeys: String, CodingKey {
            case benchmark, signatures
            case signUs = "sign_us", verifyUs = "verify_us", verifyBoringSSLUs = "verify_boringssl_us", batchVerifyUs = "batch_verify_us"
        }
    }

    func validate() throws {
        guard (64...1_000_000).contains(count) else { throw ValidationError("count must be 64...1000000") }
    }

    func run() throws {
        let keys = (0..<4).map { KeyPair.deterministic("bench-\($0)") }
        let messages = (0..<count).map { Array("a receipt-sized message \($0) ".utf8) + [UInt8](repeating: UInt8($0 & 0xFF), count: 160) }
        func time(_ body: () -> Void) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1_000 / Double(count)
        }
        var sigs: [Signature] = []
        sigs.reserveCapacity(count)
        let sign = time { for (i, m) in messages.enumerated() { sigs.append(keys[i % 4].sign(m)) } }
        var ok = true
        let verify = time { for (i, m) in messages.enumerated() { ok = ok && keys[i % 4].address.verifies(sigs[i], over: m) } }
        let boring = try keys.map { try Curve25519.Signing.PublicKey(rawRepresentation: $0.address.bytes) }
        let verifyBoring = time { for (i, m) in messages.enumerated() { ok = ok && boring[i % 4].isValidSignature(sigs[i].bytes, for: m) } }
        var batches: [String: Double] = [:]
        let cache = Ed25519.KeyCache()
        let items = messages.enumerated().map { (signature: sigs[$0.offset].bytes, publicKey: keys[$0.offset % 4].address.bytes, message: $0.element) }
        for size in [1, 2, 4, 16, 64] {
            batches[String(size)] = time {
                var start = 0
                while start < items.count {
                    let slice = Array(items[start..<min(items.count, start + size)])
                    ok = ok && !Ed25519.verify(batch: slice, cache: cache).contains(false)
                    start += size
                }
            }
        }
        guard ok else { throw PlexusError(.badSignature, "a valid signature failed to verify") }
        let r = Result(signatures: count, signUs: sign, verifyUs: verify, verifyBoringSSLUs: verifyBoring, batchVerifyUs: batches)
        if json { try printJSON(r) } else {
            print(String(format: "sign %.1f µs, verify %.1f µs (BoringSSL %.1f µs); batched: %@", sign, verify, verifyBoring,
                         batches.sorted { Int($0.key)! < Int($1.key)! }.map { "\($0.key): \(String(format: "%.1f", $0.value)) µs" }.joined(separator: ", ")))
        }
    }
}
