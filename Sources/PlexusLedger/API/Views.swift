import PlexusCore

/// JSON view of an account.
public struct AccountView: Codable, Sendable {
    public var address: Address
    public var balance: Amount
    public var nonce: UInt64
    public var staked: Amount
    public var unbonding: [PendingRelease]
    public var escrow: Amount
    public var escrowUnlocking: [PendingRelease]

    public init(address: Address, account: Account) {
        self.address = address
        balance = account.balance
        nonce = account.nonce
        staked = account.staked
        unbonding = account.unbonding
        escrow = account.escrow
        escrowUnlocking = account.escrowUnlocking
    }
}

/// JSON view of a block.
public struct BlockView: Codable, Sendable {
    public var hash: Hash256
    public var header: BlockHeader
    public var signature: Signature
    public var transactions: [Transaction]
    public var transactionHashes: [Hash256]

    public init(_ block: Block) {
        hash = block.header.hash
        header = block.header
        signature = block.signature
        transactions = block.transactions
        transactionHashes = block.transactions.map(\.hash)
    }
}

/// JSON view of the parameters with their bounds.
public struct ParamsView: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var name: String
        public var value: UInt64
        public var min: UInt64
        public var max: UInt64
        public var summary: String
    }

    public var params: [Entry]
    /// The height these values stood at, when asked for one (`?at=`); nil: now.
    public var at: UInt64?
    /// Every change governance has made, in order (with `?at=`: those after that height, which
    /// the values shown undo).
    public var changes: [ParamChange]?

    public init(_ p: Params, at: UInt64? = nil, changes: [ParamChange]? = nil) {
        params = zip(Params.specs, p.named).map { spec, nv in
            Entry(name: spec.name, value: nv.value, min: spec.min, max: spec.max, summary: spec.summary)
        }
        self.at = at
        self.changes = changes
    }
}

/// Where the supply is, summed over every account (`GET /v1/supply`): what accounts hold
/// spendable, staked, unbonding and in escrow (unlocking included), the treasury's balance,
/// and what pending settlements, open disputes' bonds and paid-for data hold until they end.
public struct SupplyView: Codable, Sendable {
    public var height: UInt64
    public var total: Amount
    public var balances: Amount
    public var staked: Amount
    public var unbonding: Amount
    public var escrow: Amount
    public var treasury: Amount
    public var pending: Amount
    public var accounts: Int

    public init(_ st: LedgerState) {
        var b: UInt64 = 0, s: UInt64 = 0, u: UInt64 = 0, e: UInt64 = 0
        for a in st.accounts.values {
            b &+= a.balance.units
            s &+= a.staked.units
            u &+= a.unbondingTotal.units
            e &+= a.escrow.units &+ a.escrowUnlockingTotal.units
        }
        height = st.height
        total = st.totalSupply
        balances = Amount(units: b)
        staked = Amount(units: s)
        unbonding = Amount(units: u)
        escrow = Amount(units: e)
        treasury = st.treasury
        pending = (try? st.pendingSettlementTotal()) ?? .zero
        accounts = st.accounts.count
    }
}

/// JSON view of a page of events.
public struct EventsView: Codable, Sendable {
    /// The height asked for.
    public var since: UInt64
    /// The last height included; ask again with `since` = this.
    public var through: UInt64
    /// The committed height when answering.
    public var height: UInt64
    public var events: [BlockEvent]
}

extension BlockEvent {
    enum JSONKeys: String, CodingKey { case height, txIndex, event }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: JSONKeys.self)
        try c.encode(height, forKey: .height)
        try c.encodeIfPresent(txIndex, forKey: .txIndex)
        try c.encode(event, forKey: .event)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: JSONKeys.self)
        height = try c.decode(UInt64.self, forKey: .height)
        txIndex = try c.decodeIfPresent(UInt32.self, forKey: .txIndex)
        event = try c.decode(Event.self, forKey: .event)
    }
}

/// Where a committed transaction is (with the transaction itself when asked: `?body=1`).
public struct TxLocation: Codable, Sendable, Hashable {
    public var hash: Hash256
    public var height: UInt64
    public var index: Int
    public var transaction: Transaction?
}

/// A block's header and a page of its transactions as hash, kind and sender only
/// (`GET /v1/blocks/{height}?summary=1&offset=N&limit=M`): what a list of a large block needs.
public struct BlockSummaryView: Codable, Sendable {
    public struct Entry: Codable, Sendable, Hashable {
        public var index: Int
        public var hash: Hash256
        public var kind: String
        public var from: Address
    }
    public var hash: Hash256
    public var header: BlockHeader
    public var transactionCount: Int
    public var offset: Int
    public var transactions: [Entry]

    public init(_ block: Block, offset: Int, limit: Int) {
        hash = block.header.hash
        header = block.header
        transactionCount = block.transactions.count
        let start = min(offset, block.transactions.count)
        self.offset = start
        transactions = block.transactions[start..<min(block.transactions.count, start + limit)].enumerated().map { i, tx in
            Entry(index: start + i, hash: tx.hash, kind: tx.body.kind.name, from: tx.from)
        }
    }
}
