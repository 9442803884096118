import Foundation
import GRDB
import Synchronization
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
        try AtomicFile.write(Array(data), to: path, permissions: 0o600)
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

/// The API key table, reloaded when its file changes.
final class APIKeyCache: Sendable {
    let keys: APIKeys
    private let state = Mutex<(modified: Int?, size: Int, table: [String: Address])>((nil, -1, [:]))

    init(_ keys: APIKeys) { self.keys = keys }

    func account(forKeyHash h: String) throws -> Address? {
        // One stat(2) per lookup: the table is read again only when the file changed.
        var st = stat()
        let found = stat(keys.path, &st) == 0
        let modified = found ? Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec) : nil
        let size = found ? Int(st.st_size) : 0
        let cached = state.withLock { s -> [String: Address]? in s.modified == modified && s.size == size ? s.table : nil }
        if let cached { return cached[h] }
        let table = try keys.table()
        state.withLock { $0 = (modified, size, table) }
        return table[h]
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

/// Durable store of receipts and their settlement state (SQLite, synchronous=FULL).
public final class ReceiptStore: Sendable {
    let pool: DatabasePool

    public init(path: String) throws {
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS requests (
                    id BLOB PRIMARY KEY, state TEXT NOT NULL, record BLOB NOT NULL, created INTEGER NOT NULL,
                    due INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
                """)
            // Stores written before `due` existed: add it; "submitted" meant "not yet settled".
            let columns = try String.fetchAll(db, sql: "SELECT name FROM pragma_table_info('requests')")
            if !columns.contains("due") { try db.execute(sql: "ALTER TABLE requests ADD COLUMN due INTEGER NOT NULL DEFAULT 0") }
            try db.execute(sql: """
                UPDATE requests SET state = 'unsettled' WHERE state = 'submitted';
                DROP INDEX IF EXISTS requests_state;
                CREATE INDEX IF NOT EXISTS requests_state_due ON requests (state, due, created);
                """)
        }
    }

    /// The state column is the truth: the record blob keeps the state it was first written with.
    private static func decodeRow(_ row: Row) throws -> RequestRecord {
        var r = try RequestRecord.decodeStored(row["record"])
        r.state = row["state"]
        return r
    }

    /// Records a settlement state (and, for "pending", the height at which it becomes final) without rewriting the records.
    public func setStates(_ changes: [(id: Hash256, state: String, due: UInt64)]) throws {
        guard !changes.isEmpty else { return }
        try pool.write { db in
            let st = try db.cachedStatement(sql: "UPDATE requests SET state = ?, due = ? WHERE id = ?")
            for c in changes { try st.execute(arguments: [c.state, Int64(clamping: c.due), Data(c.id.bytes)]) }
        }
    }

    /// Records in `state` due by `height` (pending settlements that should be final), earliest first.
    public func records(state: String, dueBy height: UInt64, limit: Int) throws -> [RequestRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT state, record FROM requests WHERE state = ? AND due <= ? ORDER BY due, created LIMIT ?",
                             arguments: [state, Int64(clamping: height), limit]).map(Self.decodeRow)
        }
    }

    public func save(_ r: RequestRecord) throws {
        try save([r])
    }

    /// Writes records in one transaction (one fsync).
    public func save(_ records: [RequestRecord]) throws {
        let rows = records.map { ($0, Data($0.canonicalBytes)) }
        try pool.write { db in
            let st = try db.cachedStatement(sql: "INSERT OR REPLACE INTO requests (id, state, record, created, due) VALUES (?, ?, ?, ?, 0)")
            for (r, data) in rows {
                try st.execute(arguments: [Data(r.requestId.bytes), r.state, data, Int64(r.createdMillis)])
            }
        }
    }

    // Group commit: records saved while a write is in progress go together in the next one.
    private let queue = Mutex<(pending: [(RequestRecord, CheckedContinuation<Void, any Error>)], writing: Bool)>(([], false))

    /// Saves `r` durably, sharing the transaction (and its fsync) with
    /// concurrent callers; returns once it is on disk.
    public func saveDurably(_ r: RequestRecord) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let start = queue.withLock { q -> Bool in
                q.pending.append((r, c))
                if q.writing { return false }
                q.writing = true
                return true
            }
            if start { DispatchQueue.global().async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = queue.withLock { q -> [(RequestRecord, CheckedContinuation<Void, any Error>)] in
                let b = q.pending
                q.pending = []
                if b.isEmpty { q.writing = false }
                return b
            }
            if batch.isEmpty { return }
            do {
                try save(batch.map(\.0))
                for (_, c) in batch { c.resume() }
            } catch {
                for (_, c) in batch { c.resume(throwing: error) }
            }
        }
    }

    public func get(_ id: Hash256) throws -> RequestRecord? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT state, record FROM requests WHERE id = ?", arguments: [Data(id.bytes)]) else { return nil }
            return try Self.decodeRow(row)
        }
    }

    /// Records in `states`, oldest first.
    public func records(in states: [String], limit: Int) throws -> [RequestRecord] {
        try pool.read { db in
            let marks = states.map { _ in "?" }.joined(separator: ",")
            let rows = try Row.fetchAll(db, sql: "SELECT state, record FROM requests WHERE state IN (\(marks)) ORDER BY created LIMIT ?",
                                        arguments: StatementArguments(states + [String(limit)]))
            return try rows.map(Self.decodeRow)
        }
    }

    /// How many requests are recorded.
    public func count() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") ?? 0 }
    }
}
