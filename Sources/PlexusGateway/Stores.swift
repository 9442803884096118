import Foundation
import GRDB
import PlexusCore
import PlexusLedger

/// API keys bound to ledger accounts, kept as SHA-256 digests in a JSON file (mode 0600).
public struct APIKeys: Sendable {
    public struct Entry: Codable, Sendable {
        public var keyHash: String
        public var account: Address
        public var created: UInt64
    }

    public let path: String

    public init(path: String) { self.path = path }

    /// Creates a new key for `account`, stores its digest and returns the key (shown once).
    public func create(account: Address) throws -> String {
        var bytes = [UInt8](repeating: 0, count: 24)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<bytes.count { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let key = "sk-plexus-" + Hex.encode(bytes)
        var entries = try load()
        entries.append(Entry(keyHash: Hash256.of(Array(key.utf8)).hex, account: account, created: SystemClock().nowMillis()))
        let data = try JSONEncoder.compact.encode(entries)
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path + ".tmp", contents: data, attributes: [.posixPermissions: 0o600])
        guard rename(path + ".tmp", path) == 0 else { throw PlexusError(.io, "cannot write \(path) (errno \(errno))") }
        return key
    }

    public func load() throws -> [Entry] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        do {
            return try JSONDecoder().decode([Entry].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PlexusError(.malformed, "API key file \(path) is unreadable", cause: error)
        }
    }

    /// Digest → account, for lookups.
    public func table() throws -> [String: Address] {
        Dictionary(try load().map { ($0.keyHash, $0.account) }, uniquingKeysWith: { a, _ in a })
    }
}

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

/// Durable store of receipts and their settlement state (SQLite, synchronous=FULL).
public final class ReceiptStore: Sendable {
    let pool: DatabasePool

    public init(path: String) throws {
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        pool = try DatabasePool(path: path, configuration: config)
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS requests (
                    id BLOB PRIMARY KEY, state TEXT NOT NULL, record BLOB NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS requests_state ON requests (state);
                """)
        }
    }

    public func save(_ r: RequestRecord) throws {
        let data = try JSONEncoder.compact.encode(r)
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO requests (id, state, record, created) VALUES (?, ?, ?, ?)",
                           arguments: [Data(r.requestId.bytes), r.state, data, Int64(r.createdMillis)])
        }
    }

    public func get(_ id: Hash256) throws -> RequestRecord? {
        try pool.read { db in
            guard let d = try Data.fetchOne(db, sql: "SELECT record FROM requests WHERE id = ?", arguments: [Data(id.bytes)]) else { return nil }
            return try JSONDecoder().decode(RequestRecord.self, from: d)
        }
    }

    /// Records in `states`, oldest first.
    public func records(in states: [String], limit: Int) throws -> [RequestRecord] {
        try pool.read { db in
            let marks = states.map { _ in "?" }.joined(separator: ",")
            let rows = try Data.fetchAll(db, sql: "SELECT record FROM requests WHERE state IN (\(marks)) ORDER BY created LIMIT ?",
                                         arguments: StatementArguments(states + [String(limit)]))
            return try rows.map { try JSONDecoder().decode(RequestRecord.self, from: $0) }
        }
    }

    /// Sum of charges not yet taken from escrow on the ledger, per requestor.
    public func unsettledCharges() throws -> [Address: UInt64] {
        var out: [Address: UInt64] = [:]
        for r in try records(in: ["unsettled", "submitted"], limit: 1_000_000) { out[r.requestor, default: 0] += r.charge.units }
        return out
    }
}
