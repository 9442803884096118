import Foundation
import PlexusCore
import PlexusLedger

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
}

extension RequestRecord: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt8(1))  // format version
        w.write(requestId); w.write(requestor); w.write(model)
        w.write(UInt32(nodes.count))
        for (n, t) in zip(nodes, outputTokens) { w.write(n); w.write(t) }
        w.write(array: receipts)
        w.write(charge); w.write(state)
        w.write(reason ?? ""); w.write(createdMillis)
    }

    public init(from r: inout CanonicalReader) throws {
        guard try r.readUInt8() == 1 else { throw PlexusError(.malformed, "unknown request record format") }
        requestId = try r.readHash()
        requestor = try r.readAddress()
        model = try r.readString(limit: Registry.maxName)
        let n = Int(try r.readUInt32())
        guard n <= 64 else { throw PlexusError(.tooLarge, "too many nodes in a request record") }
        var ns: [Address] = [], ts: [UInt64] = []
        for _ in 0..<n { ns.append(try r.readAddress()); ts.append(try r.readUInt64()) }
        nodes = ns
        outputTokens = ts
        receipts = try r.readArray(of: Receipt.self, limit: Registry.maxParts)
        charge = try r.readAmount()
        state = try r.readString(limit: 32)
        let why = try r.readString(limit: 4096)
        reason = why.isEmpty ? nil : why
        createdMillis = try r.readUInt64()
    }

    /// Stored form: canonical bytes (older stores hold JSON, still readable).
    static func decodeStored(_ d: Data) throws -> RequestRecord {
        if d.first == UInt8(ascii: "{") { return try JSONDecoder().decode(RequestRecord.self, from: d) }
        return try RequestRecord(canonicalBytes: Array(d))
    }
}
