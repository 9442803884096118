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

    public init(_ p: Params) {
        params = zip(Params.specs, p.named).map { spec, nv in
            Entry(name: spec.name, value: nv.value, min: spec.min, max: spec.max, summary: spec.summary)
        }
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

/// Where a committed transaction is.
public struct TxLocation: Codable, Sendable, Hashable {
    public var hash: Hash256
    public var height: UInt64
    public var index: Int
}
