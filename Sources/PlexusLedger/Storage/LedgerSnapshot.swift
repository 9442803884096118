import Foundation
import GRDB
import PlexusCore

/// A replica's state at one height, signed by the replica that took it: the stored rows
/// (accounts, registry records, parameters), the tip block, and the state root they hash
/// to. A new replica starts from one (`ledger start --snapshot`) and replays forward; it
/// trusts no more than it checks: the signer must be one of the chain's sealers, the rows
/// must hash to the root the snapshot names, and the next block, sealed by whoever seals
/// then, names the root it builds on, so a replica started from a false state halts at
/// the first block after it. `plexus ledger verify --snapshot` checks one against a
/// replay from genesis.
public struct LedgerSnapshot: Sendable, Equatable, CanonicalCodable {
    public var chainId: String
    public var genesisHash: Hash256
    /// The last replicated-log entry applied (0 for a solo ledger).
    public var slot: UInt64
    public var height: UInt64
    public var timeMillis: UInt64
    public var params: [UInt8]
    /// The block at `height` with its events' stored bytes (nil at height 0).
    public var tip: Block?
    public var tipEvents: [UInt8]
    public var accounts: [Row]
    public var records: [Row]
    /// The state root the rows hash to.
    public var stateRoot: Hash256
    public var signer: Address
    public var signature: Signature

    /// A stored row: key and value bytes.
    public struct Row: Sendable, Equatable, CanonicalCodable {
        public var key: [UInt8]
        public var value: [UInt8]

        public func encode(to w: inout CanonicalWriter) {
            w.write(lengthPrefixed: key)
            w.write(lengthPrefixed: value)
        }

        public init(key: [UInt8], value: [UInt8]) {
            self.key = key
            self.value = value
        }

        public init(from r: inout CanonicalReader) throws {
            key = try r.readLengthPrefixed(limit: 4096)
            value = try r.readLengthPrefixed(limit: 1 << 24)
        }
    }

    static let maxRows = 50_000_000

    /// The bytes the signature covers: everything but the signature.
    public var body: [UInt8] {
        var w = CanonicalWriter()
        w.write("plexus-snapshot-v1")
        w.write(chainId)
        w.write(genesisHash)
        w.write(slot)
        w.write(height)
        w.write(timeMillis)
        w.write(lengthPrefixed: params)
        w.write(optional: tip)
        w.write(lengthPrefixed: tipEvents)
        w.write(array: accounts)
        w.write(array: records)
        w.write(stateRoot)
        w.write(signer)
        return w.bytes
    }

    /// What the signature covers, hashed.
    public var hash: Hash256 { Hash256.of(body) }

    public func encode(to w: inout CanonicalWriter) {
        w.write(fixed: body)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws {
        guard try r.readString() == "plexus-snapshot-v1" else { throw PlexusError(.malformed, "not a Plexus ledger snapshot (v1)") }
        chainId = try r.readString()
        genesisHash = try r.readHash()
        slot = try r.readUInt64()
        height = try r.readUInt64()
        timeMillis = try r.readUInt64()
        params = try r.readLengthPrefixed()
        tip = try r.readOptional(Block.self)
        tipEvents = try r.readLengthPrefixed(limit: 1 << 28)
        accounts = try r.readArray(of: Row.self, limit: Self.maxRows)
        records = try r.readArray(of: Row.self, limit: Self.maxRows)
        stateRoot = try r.readHash()
        signer = try r.readAddress()
        signature = try r.readSignature()
    }

    /// Reads `store`'s last committed state in one read transaction and signs it with `key`.
    public static func take(from store: BlockStore, signedBy key: KeyPair) throws -> LedgerSnapshot {
        let genesis = try store.genesis()
        var s = try store.pool.read { db -> LedgerSnapshot in
            let (height, time, params, slot) = try store.readMeta(db)
            func rows(_ sql: String) throws -> [Row] {
                var out: [Row] = []
                let cursor = try GRDB.Row.fetchCursor(db, sql: sql)
                while let row = try cursor.next() {
                    let k: Data = row[0], v: Data = row[1]
                    out.append(Row(key: Array(k), value: Array(v)))
                }
                return out
            }
            var tip: Block?
            var events: [UInt8] = []
            if height > 0 {
                guard let row = try GRDB.Row.fetchOne(db, sql: "SELECT header, signature, txs, events FROM blocks WHERE height = ?", arguments: [Int64(height)]) else {
                    throw PlexusError(.invalidState, "database \(store.path): tip block \(height) is missing")
                }
                let hb: Data = row[0], sb: Data = row[1], tb: Data = row[2], eb: Data = row[3]
                var tr = CanonicalReader(Array(tb))
                tip = Block(header: try BlockHeader(canonicalBytes: Array(hb)), signature: try Signature(bytes: Array(sb)),
                            transactions: try tr.readArray(of: Transaction.self, limit: 1_000_000))
                events = Array(eb)
            }
            return LedgerSnapshot(chainId: genesis.chainId, genesisHash: genesis.hash, slot: slot, height: height, timeMillis: time,
                                  params: params, tip: tip, tipEvents: events,
                                  accounts: try rows("SELECT address, record FROM accounts ORDER BY address"),
                                  records: try rows("SELECT key, value FROM records ORDER BY key"),
                                  stateRoot: .zero, signer: key.address, signature: key.sign([]))
        }
        var state = try s.state(genesis: genesis)
        s.stateRoot = state.commit().root
        s.signature = key.sign(s.hash.bytes)
        return s
    }

    public init(chainId: String, genesisHash: Hash256, slot: UInt64, height: UInt64, timeMillis: UInt64, params: [UInt8], tip: Block?,
         tipEvents: [UInt8], accounts: [Row], records: [Row], stateRoot: Hash256, signer: Address, signature: Signature) {
        self.chainId = chainId
        self.genesisHash = genesisHash
        self.slot = slot
        self.height = height
        self.timeMillis = timeMillis
        self.params = params
        self.tip = tip
        self.tipEvents = tipEvents
        self.accounts = accounts
        self.records = records
        self.stateRoot = stateRoot
        self.signer = signer
        self.signature = signature
    }

    /// The state the rows hold (as `BlockStore.load` builds it).
    public func state(genesis: Genesis) throws -> LedgerState {
        var accounts: [Address: Account] = [:]
        for row in self.accounts { accounts[try Address(bytes: row.key)] = try Account(canonicalBytes: row.value) }
        var state = LedgerState(chainId: genesis.chainId, totalSupply: try genesis.initialState().totalSupply, params: try Params(canonicalBytes: params),
                                height: height, timeMillis: timeMillis, accounts: accounts)
        try state.load(records: records.map { ($0.key, $0.value) })
        return state
    }

    /// Checks the snapshot against the chain's genesis: its chain, a sealer's (or the
    /// orderer's) valid signature, a tip block of its height sealed by one of them, rows
    /// that hash to the root it names. The state it holds, or a clear error.
    public func check(genesis: Genesis) throws -> LedgerState {
        guard chainId == genesis.chainId, genesisHash == genesis.hash else {
            throw PlexusError(.invalidState, "the snapshot is of chain \(chainId) (genesis \(genesisHash.hex.prefix(12))), not \(genesis.chainId)")
        }
        let signers = Set(genesis.sealers ?? [genesis.orderer])
        guard signers.contains(signer) else { throw PlexusError(.badSignature, "the snapshot is signed by \(signer.short), not a sealer of this chain") }
        guard signer.verifies(signature, over: hash.bytes) else { throw PlexusError(.badSignature, "the snapshot's signature does not verify") }
        if let tip {
            guard tip.header.height == height, tip.header.chainId == chainId, signers.contains(tip.header.orderer), tip.hasValidSignature else {
                throw PlexusError(.invalidBlock, "the snapshot's tip is not a block of height \(height) sealed by this chain")
            }
        } else if height != 0 {
            throw PlexusError(.invalidBlock, "the snapshot of height \(height) has no tip block")
        }
        var state = try state(genesis: genesis)
        let root = state.commit().root
        guard root == stateRoot else {
            throw PlexusError(.stateMismatch, "the snapshot's rows hash to \(root.hex.prefix(16)), not the \(stateRoot.hex.prefix(16)) it names")
        }
        return state
    }

    /// The hash of the header the snapshot's state follows.
    public func tipHash(genesis: Genesis) -> Hash256 { tip?.header.hash ?? genesis.hash }
}

extension BlockStore {
    /// Installs a checked snapshot in a store that holds only its genesis; the snapshot is
    /// kept (meta `snapshot`) so that `ledger verify` replays from it.
    public func install(_ s: LedgerSnapshot) throws {
        var txBytes = CanonicalWriter()
        txBytes.write(array: s.tip?.transactions ?? [])
        try pool.write { db in
            guard try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM blocks") == 0 else {
                throw PlexusError(.invalidState, "database \(path) holds blocks already; a snapshot starts an empty one")
            }
            try db.execute(sql: "DELETE FROM accounts")
            try db.execute(sql: "DELETE FROM records")
            if let tip = s.tip {
                try db.execute(sql: "INSERT INTO blocks (height, hash, header, signature, txs, events) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [Int64(s.height), Data(tip.header.hash.bytes), Data(tip.header.canonicalBytes), Data(tip.signature.bytes),
                                           Data(txBytes.bytes), Data(s.tipEvents)])
                // The tip's transactions are found as committed ones are: all but those its events flag invalid.
                var r = CanonicalReader(s.tipEvents)
                let events = (try? r.readArray(of: BlockEvent.self, limit: 10_000_000)) ?? []
                var invalid: Set<Hash256> = []
                for e in events { if case let .transactionInvalid(hash, _) = e.event { invalid.insert(hash) } }
                let index = try db.cachedStatement(sql: "INSERT OR REPLACE INTO txs (hash, height, idx) VALUES (?, ?, ?)")
                for (i, tx) in tip.transactions.enumerated() where !invalid.contains(tx.hash) {
                    try index.execute(arguments: [Data(tx.hash.bytes), Int64(s.height), i])
                }
            }
            let account = try db.cachedStatement(sql: "INSERT INTO accounts (address, record) VALUES (?, ?)")
            for row in s.accounts { try account.execute(arguments: [Data(row.key), Data(row.value)]) }
            let record = try db.cachedStatement(sql: "INSERT INTO records (key, value) VALUES (?, ?)")
            for row in s.records { try record.execute(arguments: [Data(row.key), Data(row.value)]) }
            var w = CanonicalWriter()
            w.write(s.height)
            w.write(s.timeMillis)
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('tip', ?)", arguments: [Data(w.bytes)])
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('params', ?)", arguments: [Data(s.params)])
            var slot = CanonicalWriter()
            slot.write(s.slot)
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('slot', ?)", arguments: [Data(slot.bytes)])
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('snapshot', ?)", arguments: [Data(s.canonicalBytes)])
        }
    }

    /// The snapshot this store started from, if it did.
    public func startingSnapshot() throws -> LedgerSnapshot? {
        try pool.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'snapshot'") }.map { try LedgerSnapshot(canonicalBytes: Array($0)) }
    }
}
