import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusWire

/// What the gateway knows about a request it served.
public struct RequestRecord: Codable, Sendable {
    public var requestId: Hash256
    public var requestor: Address
    public var model: String
    /// Every node that served a share, in order, with its output tokens (a
    /// node that failed mid-stream is listed with the tokens it sent, unpaid).
    public var nodes: [Address]
    public var outputTokens: [UInt64]
    /// Node-signed, gateway-countersigned receipts of the paid shares.
    public var receipts: [Receipt]
    public var charge: Amount
    /// unsettled → submitted → pending → final, or rejected.
    public var state: String
    public var reason: String?
    public var createdMillis: UInt64
    /// The spot premium locked when the request was admitted (settled with it).
    public var quote: SpotQuote?
    /// What re-executes the request, kept until its settlement is final and handed only
    /// to the requestor (and assigned verifiers): never in the record's JSON view.
    public var transcript: RecordedTranscript?
    /// The attempts that failed before the one that finished, in order, with why (the trace's
    /// failover points; one that sent tokens is also in `nodes`, unpaid). Kept in the canonical
    /// record only (older JSON records have none), shown by the public trace.
    public var failures: [FailedAttempt] = []

    /// An attempt that ended without the answer: its node, the tokens it sent and why it ended.
    public struct FailedAttempt: Codable, Sendable, Hashable {
        public var node: Address
        public var outputTokens: UInt64
        public var reason: String
        /// Longest reason kept.
        static let maxReason = 300
    }

    enum CodingKeys: String, CodingKey {
        case requestId, requestor, model, nodes, outputTokens, receipts, charge, state, reason, createdMillis, quote
    }
}

/// A request's transcript as the gateway keeps it: the first share's node request in the
/// very bytes sent (their SHA-256 is its receipt's request hash), the output tokens and
/// how the answer ended.
public struct RecordedTranscript: Sendable, Hashable {
    public var request: [UInt8]
    public var outputTokens: [TokenID]
    public var finish: String

    /// Longest request body and output kept.
    static let maxRequestBytes = 1 << 22, maxTokens = 1 << 20
}

extension RequestRecord {
    /// Every attempt in order: the failed ones (with why) and those that served a share.
    /// A failed attempt that sent tokens is listed once, with its reason.
    var attempts: [(node: Address, outputTokens: UInt64, paid: Bool, failure: String?)] {
        let paid = Set(receipts.map(\.node))
        var out: [(node: Address, outputTokens: UInt64, paid: Bool, failure: String?)] = []
        // A failure that sent tokens is also the next of the shares (they are appended in the same order).
        var shares = Array(zip(nodes, outputTokens))[...]
        for f in failures {
            if f.outputTokens > 0, shares.first?.0 == f.node { shares = shares.dropFirst() }
            out.append((f.node, f.outputTokens, false, f.reason))
        }
        for (n, t) in shares { out.append((n, t, paid.contains(n), nil)) }
        return out
    }

    /// The transcript with its receipts, for a requestor or a verifier; nil when none is kept.
    func transcriptView(chainId: String) throws -> Transcript? {
        guard let t = transcript, let first = receipts.first else { return nil }
        return Transcript(modelHash: first.modelHash, request: try GenerateRequest.decode(t.request), outputTokens: t.outputTokens,
                          finishReason: t.finish, chainId: chainId, receipts: receipts)
    }
}

extension RequestRecord: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt8(4))  // format version (1: without the transcript, receipts of format 1 only; 2: without the quote; 3: without failures)
        w.write(requestId); w.write(requestor); w.write(model)
        w.write(UInt32(nodes.count))
        for (n, t) in zip(nodes, outputTokens) { w.write(n); w.write(t) }
        w.write(array: receipts.map(VersionedReceipt.init))
        w.write(charge); w.write(state)
        w.write(reason ?? ""); w.write(createdMillis)
        w.write(transcript != nil)
        if let t = transcript {
            w.write(lengthPrefixed: t.request)
            w.write(UInt32(t.outputTokens.count))
            for token in t.outputTokens { w.write(UInt32(bitPattern: token)) }
            w.write(t.finish)
        }
        w.write(optional: quote)
        w.write(UInt32(failures.count))
        for f in failures { w.write(f.node); w.write(f.outputTokens); w.write(f.reason) }
    }

    public init(from r: inout CanonicalReader) throws {
        let version = try r.readUInt8()
        guard (1...4).contains(version) else { throw PlexusError(.malformed, "unknown request record format") }
        requestId = try r.readHash()
        requestor = try r.readAddress()
        model = try r.readString(limit: Registry.maxName)
        let n = Int(try r.readUInt32())
        guard n <= 64 else { throw PlexusError(.tooLarge, "too many nodes in a request record") }
        var ns: [Address] = [], ts: [UInt64] = []
        for _ in 0..<n { ns.append(try r.readAddress()); ts.append(try r.readUInt64()) }
        nodes = ns
        outputTokens = ts
        receipts = version == 1 ? try r.readArray(of: Receipt.self, limit: Registry.maxParts)
            : try r.readArray(of: VersionedReceipt.self, limit: Registry.maxParts).map(\.receipt)
        charge = try r.readAmount()
        state = try r.readString(limit: 32)
        let why = try r.readString(limit: 4096)
        reason = why.isEmpty ? nil : why
        createdMillis = try r.readUInt64()
        transcript = nil
        if version >= 2, try r.readBool() {
            let request = try r.readLengthPrefixed(limit: RecordedTranscript.maxRequestBytes)
            let n = Int(try r.readUInt32())
            guard n <= RecordedTranscript.maxTokens else { throw PlexusError(.tooLarge, "a transcript holds at most \(RecordedTranscript.maxTokens) tokens") }
            var tokens: [TokenID] = []
            tokens.reserveCapacity(n)
            for _ in 0..<n { tokens.append(TokenID(bitPattern: try r.readUInt32())) }
            transcript = RecordedTranscript(request: request, outputTokens: tokens, finish: try r.readString(limit: 32))
        }
        quote = version >= 3 ? try r.readOptional(SpotQuote.self) : nil
        failures = []
        if version >= 4 {
            let n = Int(try r.readUInt32())
            guard n <= 64 else { throw PlexusError(.tooLarge, "too many failed attempts in a request record") }
            for _ in 0..<n {
                failures.append(FailedAttempt(node: try r.readAddress(), outputTokens: try r.readUInt64(),
                                              reason: try r.readString(limit: FailedAttempt.maxReason * 4)))
            }
        }
    }

    /// Stored form: canonical bytes (older stores hold JSON, still readable).
    static func decodeStored(_ d: Data) throws -> RequestRecord {
        if d.first == UInt8(ascii: "{") { return try JSONDecoder().decode(RequestRecord.self, from: d) }
        return try RequestRecord(canonicalBytes: Array(d))
    }
}
