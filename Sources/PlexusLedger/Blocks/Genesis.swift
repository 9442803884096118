import Foundation
import PlexusCore

/// The starting point of a chain, read from a JSON file:
///
/// ```json
/// {"chainId": "plexus-dev", "timeMillis": 0, "orderer": "plx…",
///  "params": {"minFee": 1000},
///  "accounts": [{"address": "plx…", "balance": "5000000000", "stake": "0"}]}
/// ```
/// Amounts are base-unit strings. Parameters not named take their defaults;
/// unknown or out-of-bounds parameters are rejected.
public struct Genesis: Sendable, Codable, Hashable {
    /// One funded account.
    public struct Allocation: Sendable, Codable, Hashable {
        public var address: Address
        public var balance: Amount
        public var stake: Amount?

        public init(address: Address, balance: Amount, stake: Amount? = nil) {
            self.address = address
            self.balance = balance
            self.stake = stake
        }
    }

    /// The chain id every transaction must carry.
    public var chainId: String
    /// Time of the genesis, in Unix milliseconds; block times start here.
    public var timeMillis: UInt64
    /// The only key allowed to seal blocks (the `solo` orderer).
    public var orderer: Address
    /// Parameter overrides by name.
    public var params: [String: UInt64]
    /// Initial balances and stakes.
    public var accounts: [Allocation]
    /// Model cards registered from the start (a development chain lists the default model).
    public var models: [ModelCard]?
    /// The replicas' keys, any of which may seal a block when the order comes from a
    /// replicated log (`plexus ledger start --order etcd`); the solo `orderer` seals otherwise.
    public var sealers: [Address]?

    public init(chainId: String, timeMillis: UInt64, orderer: Address, params: [String: UInt64] = [:], accounts: [Allocation],
                models: [ModelCard]? = nil, sealers: [Address]? = nil) {
        self.sealers = sealers
        self.chainId = chainId
        self.timeMillis = timeMillis
        self.orderer = orderer
        self.params = params
        self.accounts = accounts
        self.models = models
    }

    /// Largest genesis file accepted.
    public static let maxFileBytes = 64 << 20

    /// Reads and validates a genesis file.
    public static func read(_ path: String) throws -> Genesis {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlexusError(.notFound, "no genesis file at \(path)")
        }
        return try decode(Array(data))
    }

    /// Parses and validates genesis JSON.
    public static func decode(_ bytes: [UInt8]) throws -> Genesis {
        guard bytes.count <= maxFileBytes else {
            throw PlexusError(.tooLarge, "genesis is \(bytes.count) bytes; the limit is \(maxFileBytes)")
        }
        let g: Genesis
        do {
            g = try JSONDecoder().decode(Genesis.self, from: Data(bytes))
        } catch let e as PlexusError {
            throw e
        } catch {
            throw PlexusError(.malformed, "genesis is not valid JSON of the expected shape", cause: error)
        }
        _ = try g.initialState()
        return g
    }

    /// The genesis as pretty, key-sorted JSON.
    public func json() throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(self))
    }

    /// The validated parameters.
    public func resolvedParams() throws -> Params {
        var p = Params.defaults
        for name in params.keys.sorted() {
            try p.set(name, to: params[name] ?? 0)
        }
        try p.checkRelations()
        return p
    }

    /// The state at height 0.
    public func initialState() throws -> LedgerState {
        guard !chainId.isEmpty, chainId.utf8.count <= 64,
              chainId.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw PlexusError(.malformed, "chain id must be 1-64 printable ASCII characters without spaces")
        }
        var accounts: [Address: Account] = [:]
        for a in self.accounts {
            guard accounts[a.address] == nil else {
                throw PlexusError(.malformed, "genesis lists \(a.address) twice")
            }
            guard a.address != .treasury || (a.stake ?? .zero).isZero else {
                throw PlexusError(.malformed, "the treasury cannot stake")
            }
            var acct = Account()
            acct.balance = a.balance
            acct.staked = a.stake ?? .zero
            _ = try acct.total()
            accounts[a.address] = acct
        }
        var state = try LedgerState(chainId: chainId, params: resolvedParams(), accounts: accounts)
        try state.registerGenesisModels(models ?? [])
        return state
    }

    /// The hash standing in for block 0: SHA-256 of the canonical genesis.
    public var hash: Hash256 {
        var w = CanonicalWriter()
        w.write(fixed: Array("plexus-genesis-v1".utf8))
        w.write(chainId)
        w.write(timeMillis)
        w.write(orderer)
        let names = params.keys.sorted()
        w.write(UInt32(names.count))
        for n in names { w.write(n); w.write(params[n] ?? 0) }
        w.write(UInt32(accounts.count))
        for a in accounts {
            w.write(a.address)
            w.write(a.balance)
            w.write(a.stake ?? .zero)
        }
        // Written only when present, so a genesis without cards keeps the hash it always had.
        if let models, !models.isEmpty {
            w.write(UInt32(models.count))
            for m in models { m.encode(to: &w) }
        }
        if let sealers, !sealers.isEmpty {
            w.write(fixed: Array("sealers".utf8))
            w.write(UInt32(sealers.count))
            for a in sealers { w.write(a) }
        }
        return Hash256.of(w.bytes)
    }
}
