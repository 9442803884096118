import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger

/// Everything needed to re-execute a served request and to bind it to its receipts:
/// the node request exactly as the gateway sent it (its SHA-256, with each share's
/// continuation, is that share's receipt request hash), the output tokens, how it
/// ended, and the node-signed receipts of the paid shares. JSON with snake_case keys.
public struct Transcript: Codable, Sendable, Hashable {
    /// SHA-256 of the weights the receipts name.
    public var modelHash: Hash256
    /// The first share's node request (its continuation empty).
    public var request: GenerateRequest
    /// The prompt's tokens, as the node's engine made them (checked against the request).
    public var promptTokens: [TokenID]?
    public var outputTokens: [TokenID]
    /// "stop" (a stop string or the end of sequence) or "length", as the node reported it.
    public var finishReason: String
    /// The chain whose keys signed the receipts.
    public var chainId: String
    public var receipts: [Receipt]

    enum CodingKeys: String, CodingKey {
        case modelHash = "model_hash", request, promptTokens = "prompt_tokens", outputTokens = "output_tokens"
        case finishReason = "finish_reason", chainId = "chain_id", receipts
    }

    public init(modelHash: Hash256, request: GenerateRequest, promptTokens: [TokenID]? = nil, outputTokens: [TokenID],
                finishReason: String, chainId: String, receipts: [Receipt]) {
        self.modelHash = modelHash
        self.request = request
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
        self.finishReason = finishReason
        self.chainId = chainId
        self.receipts = receipts
    }

    /// Largest transcript file read.
    public static let maxBytes = 8 << 20

    /// Parses a transcript; a clear error for anything else.
    public static func decode(_ bytes: [UInt8]) throws -> Transcript {
        guard bytes.count <= maxBytes else { throw PlexusError(.tooLarge, "a transcript is at most \(maxBytes) bytes; this one has \(bytes.count)") }
        do {
            return try JSONDecoder().decode(Transcript.self, from: Data(bytes))
        } catch {
            throw PlexusError(.malformed, "not a transcript: \(error)")
        }
    }

    /// The node request of the share that starts at output token `first`.
    public func request(continuingAt first: Int) -> GenerateRequest {
        var r = request
        r.continuation = Array(outputTokens[..<min(first, outputTokens.count)])
        return r
    }
}

/// How a verifier asks a gateway for a transcript it was assigned: it names itself
/// and signs the chain and the request id; the gateway checks the signature and asks
/// the ledger whether that verifier is assigned to the request's check or sits on
/// its dispute's committee. (A replayed signature only serves the same verifier again.)
public enum TranscriptAccess {
    /// Request headers: the verifier's address and its signature (hex).
    public static let verifierHeader = "x-plexus-verifier"
    public static let signatureHeader = "x-plexus-signature"

    static let domain = Array("plexus-transcript-access-v1".utf8)

    /// What the verifier signs.
    public static func signingBytes(chainId: String, requestId: Hash256, verifier: Address) -> [UInt8] {
        var w = CanonicalWriter(capacity: 128)
        w.write(fixed: domain); w.write(chainId); w.write(requestId); w.write(verifier)
        return w.bytes
    }

    /// The two headers for `key` asking for `requestId`'s transcript.
    public static func headers(chainId: String, requestId: Hash256, key: KeyPair) -> [(String, String)] {
        let sig = key.sign(signingBytes(chainId: chainId, requestId: requestId, verifier: key.address))
        return [(verifierHeader, key.address.text), (signatureHeader, Hex.encode(sig.bytes))]
    }

    /// The verifier a request names, if its signature holds.
    public static func verifier(chainId: String, requestId: Hash256, address: String?, signature: String?) -> Address? {
        guard let address, let signature, let a = try? Address(address), let bytes = try? Hex.decode(signature),
              let sig = try? Signature(bytes: bytes) else { return nil }
        return a.verifies(sig, over: signingBytes(chainId: chainId, requestId: requestId, verifier: a)) ? a : nil
    }
}
