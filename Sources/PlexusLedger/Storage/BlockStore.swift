import Foundation
import GRDB
import PlexusCore

/// Durable storage of blocks, events and the current state in SQLite (WAL).
///
/// Every block is written in one database transaction together with the
/// accounts it changed, so after a crash at any instant the database holds
/// exactly the blocks that were acknowledged and the state after the last of
/// them. `synchronous = FULL` makes an acknowledged commit survive power loss.
public final class BlockStore: Sendable {
    let pool: DatabasePool
    /// Where the database lives.
    public let path: String

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.prepareDatabase { db in
            // Settlement records are written at random keys twice each (pending, then final):
            // a page cache that holds the working set saves a read per write.
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        do {
            pool = try DatabasePool.durable(path: path, configuration: config)
            try pool.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                    CREATE TABLE IF NOT EXISTS blocks (
                        height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL,
                        signature BLOB NOT NULL, txs BLOB NOT NULL, events BLOB NOT NULL);
                    CREATE TABLE IF NOT EXISTS accounts (address BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS txs (hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS records (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                    """)
            }
        } catch {
            throw PlexusError(.io, "cannot open ledger database at \(path)", cause: error)
        }
    }

    /// Whether a genesis has been stored.
    public func isInitialized() throws -> Bool {
        try pool.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'genesis'") != nil }
    }

    /// Stores the genesis and its initial state; refuses if another genesis is there.
    public func initialize(genesis: Genesis) throws {
        var state = try genesis.initialState()
        let changes = state.commit()
        let json = try genesis.json()
        try pool.write { db in
            if let existing = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'genesis'") {
                let other = try Genesis.decode(Array(existing))
                guard other.hash == genesis.hash else {
                    throw PlexusError(.invalidState, "database \(path) belongs to another genesis (chain \(other.chainId))")
                }
                return
            }
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('genesis', ?)", arguments: [Data(json)])
            try Self.writeAccounts(changes.accounts, db)
            try Self.writeRecords(changes.records, db)
            try Self.writeMeta(db, height: 0, timeMillis: genesis.timeMillis, params: changes.params)
        }
    }

    /// One block with everything it changed.
    public struct Commit: Sendable {
        public var block: Block
        public var hash: Hash256
        public var events: [BlockEvent]
        public var accounts: [(Address, Account)]
        /// Changed registry records (nil value: removed).
        public var records: [(key: [UInt8], value: [UInt8]?)]
        public var params: Params?
        /// Indices of transactions an ordered block carried that the state refused (not indexed as committed).
        public var invalid: Set<Int> = []
        /// The replicated log's entry this block came from (nil for the solo orderer).
        public var slot: UInt64?
        /// The state root after the block (an ordered block's header carries the one before it).
        public var stateRoot: Hash256?

        public init(block: Block, hash: Hash256, events: [BlockEvent], accounts: [(Address, Account)],
                    records: [(key: [UInt8], value: [UInt8]?)] = [], params: Params?) {
            self.block = block
            self.hash = hash
            self.events = events
            self.accounts = accounts
            self.records = records
            self.params = params
        }
    }

    /// Writes a block and its state changes atomically.
    public func commit(_ c: Commit) throws {
        var txBytes = CanonicalWriter(capacity: c.block.transactions.count * 180)
        txBytes.write(array: c.block.transactions)
        var evBytes = CanonicalWriter(capacity: c.events.count * 80)
        evBytes.write(array: c.events)
        let txHashes = c.block.transactions.map(\.hash)
        try pool.write { db in
            let h = Int64(bitPattern: c.block.header.height)
            try db.execute(
                sql: "INSERT INTO blocks (height, hash, header, signature, txs, events) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [h, Data(c.hash.bytes), Data(c.block.header.canonicalBytes), Data(c.block.signature.bytes),
                            Data(txBytes.bytes), Data(evBytes.bytes)])
            let ins = try db.cachedStatement(sql: "INSERT OR REPLACE INTO txs (hash, height, idx) VALUES (?, ?, ?)")
            for (i, th) in txHashes.enumerated() where !c.invalid.contains(i) {
                try ins.execute(arguments: [Data(th.bytes), h, i])
            }
            if let slot = c.slot {
                var w = CanonicalWriter()
                w.write(slot)
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('slot', ?)", arguments: [Data(w.bytes)])
            }
            try Self.writeAccounts(c.accounts, db)
            try Self.writeRecords(c.records, db)
            try Self.writeMeta(db, height: c.block.header.height, timeMillis: c.block.header.timeMillis, params: c.params)
        }
    }

    static func writeAccounts(_ accounts: [(Address, Account)], _ db: Database) throws {
        let up = try db.cachedStatement(sql: "INSERT OR REPLACE INTO accounts (address, record) VALUES (?, ?)")
        for (address, account) in accounts {
            try up.execute(arguments: [Data(address.bytes), Data(account.canonicalBytes)])
        }
    }

    static func writeRecords(_ records: [(key: [UInt8], value: [UInt8]?)], _ db: Database) throws {
        guard !records.isEmpty else { return }
        let up = try db.cachedStatement(sql: "INSERT OR REPLACE INTO records (key, value) VALUES (?, ?)")
        let del = try db.cachedStatement(sql: "DELETE FROM records WHERE key = ?")
        for (key, value) in records {
            if let value {
                try up.execute(arguments: [Data(key), Data(value)])
            } else {
                try del.execute(arguments: [Data(key)])
            }
        }
    }

    static func writeMeta(_ db: Database, height: UInt64, timeMillis: UInt64, params: Params?) throws {
        var w = CanonicalWriter()
        w.write(height)
        w.write(timeMillis)
        try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('tip', ?)", arguments: [Data(w.bytes)])
        if let params {
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('params', ?)", arguments: [Data(params.canonicalBytes)])
        }
    }

    /// The stored genesis.
    public func genesis() throws -> Genesis {
        guard let data = try pool.read({ db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'genesis'") }) else {
            throw PlexusError(.notFound, "database \(path) has no genesis; run `plexus ledger init` first")
        }
        return try Genesis.decode(Array(data))
    }

    /// What a restart needs: genesis, the state as of the last committed block, and that block's header.
    public struct Snapshot: Sendable {
        public var genesis: Genesis
        public var state: LedgerState
        public var tip: BlockHeader?
        public var tipHash: Hash256
        /// The last replicated-log entry applied (0 if none).
        public var slot: UInt64 = 0
    }

    /// Loads the last committed state.
    public func load() throws -> Snapshot {
        let genesis = try self.genesis()
        let initial = try genesis.initialState()
        return try pool.read { db in
            let meta = try readMeta(db)
            let (height, time, slot) = (meta.height, meta.timeMillis, meta.slot)
            let params = try Params(canonicalBytes: meta.params)
            var accounts: [Address: Account] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT address, record FROM accounts")
            while let row = try rows.next() {
                let a: Data = row[0]
                let rec: Data = row[1]
                accounts[try Address(bytes: Array(a))] = try Account(canonicalBytes: Array(rec))
            }
            var state = LedgerState(chainId: genesis.chainId, totalSupply: initial.totalSupply, params: params,
                                    height: height, timeMillis: time, accounts: accounts)
            var records: [(key: [UInt8], value: [UInt8])] = []
            let recordRows = try Row.fetchCursor(db, sql: "SELECT key, value FROM records")
            while let row = try recordRows.next() {
                let k: Data = row[0]
                let v: Data = row[1]
                records.append((Array(k), Array(v)))
            }
            try state.load(records: records)
            var tip: BlockHeader?
            var tipHash = genesis.hash
            if height > 0 {
                guard let row = try Row.fetchOne(db, sql: "SELECT header, hash FROM blocks WHERE height = ?", arguments: [Int64(height)]) else {
                    throw PlexusError(.invalidState, "database \(path): tip block \(height) is missing")
                }
                let hb: Data = row[0]
                let hh: Data = row[1]
                tip = try BlockHeader(canonicalBytes: Array(hb))
                tipHash = try Hash256(bytes: Array(hh))
            }
            return Snapshot(genesis: genesis, state: state, tip: tip, tipHash: tipHash, slot: slot)
        }
    }

    /// The tip record (height and time), the parameters' bytes and the last log entry applied (0 if none).
    func readMeta(_ db: Database) throws -> (height: UInt64, timeMillis: UInt64, params: [UInt8], slot: UInt64) {
        guard let tipData = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'tip'"),
              let paramData = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'params'") else {
            throw PlexusError(.invalidState, "database \(path) is missing its tip record")
        }
        var r = CanonicalReader(Array(tipData))
        let height = try r.readUInt64(), time = try r.readUInt64()
        var slot: UInt64 = 0
        if let s = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'slot'") {
            var r = CanonicalReader(Array(s))
            slot = try r.readUInt64()
        }
        return (height, time, Array(paramData), slot)
    }

    /// The height of the last committed block (0 if none).
    public func height() throws -> UInt64 {
        try pool.read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT MAX(height) FROM blocks") ?? 0)
        }
    }

    /// The block at `height`, if committed.
    public func block(at height: UInt64) throws -> Block? {
        guard height <= UInt64(Int64.max) else { return nil }
        return try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT header, signature, txs FROM blocks WHERE height = ?", arguments: [Int64(height)]) else {
                return nil
            }
            let hb: Data = row[0], sb: Data = row[1], tb: Data = row[2]
            var r = CanonicalReader(Array(tb))
            let txs = try r.readArray(of: Transaction.self, limit: 1_000_000)
            try r.expectEnd()
            return Block(header: try BlockHeader(canonicalBytes: Array(hb)), signature: try Signature(bytes: Array(sb)), transactions: txs)
        }
    }

    /// Events of blocks in `(after, through]`, at most `limit` blocks.
    public func events(after: UInt64, through: UInt64, limit: Int) throws -> [BlockEvent] {
        guard after < through, after < UInt64(Int64.max) else { return [] }
        let upper = Swift.min(through, after + UInt64(limit))
        return try pool.read { db in
            var out = [BlockEvent]()
            let rows = try Row.fetchCursor(db, sql: "SELECT events FROM blocks WHERE height > ? AND height <= ? ORDER BY height",
                                           arguments: [Int64(after), Int64(clamping: upper)])
            while let row = try rows.next() {
                let data: Data = row[0]
                var r = CanonicalReader(Array(data))
                out.append(contentsOf: try r.readArray(of: BlockEvent.self, limit: 10_000_000))
            }
            return out
        }
    }

    /// Where a committed transaction is: block height and index.
    public func location(of tx: Hash256) throws -> (height: UInt64, index: Int)? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT height, idx FROM txs WHERE hash = ?", arguments: [Data(tx.bytes)]) else {
                return nil
            }
            let h: Int64 = row[0], i: Int = row[1]
            return (UInt64(h), i)
        }
    }
}

extension DatabasePool {
    /// A pool whose commits are synced to the disk itself (`synchronous = FULL`), set
    /// after the pool's own set-up, which turns WAL databases to `synchronous = NORMAL`
    /// (durable against a crashed process, not against a crashed machine).
    public static func durable(path: String, configuration: Configuration) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        return pool
    }
}
