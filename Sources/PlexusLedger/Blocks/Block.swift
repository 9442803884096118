import PlexusCore

/// The sealed, signed summary of a block.
public struct BlockHeader: Sendable, Hashable, Codable, CanonicalCodable {
    public var chainId: String
    /// 1 for the first block after genesis.
    public var height: UInt64
    /// Hash of the previous header (the genesis hash for height 1).
    public var previousHash: Hash256
    /// Orderer's time in Unix milliseconds; never decreases.
    public var timeMillis: UInt64
    /// Number of transactions.
    public var txCount: UInt32
    /// Merkle root of the transaction hashes, in block order.
    public var txRoot: Hash256
    /// Commitment to the whole state: after the block for a block the solo orderer sealed
    /// (it executes as it builds), before it (after the previous height, as CometBFT's app
    /// hash) for an `ordered` block, which its sealer cuts without executing.
    public var stateRoot: Hash256
    /// The key that sealed the block.
    public var orderer: Address
    /// Sealed by a replicated orderer (see `Chain.applyOrdered`): `stateRoot` is the previous
    /// height's, and a transaction the state refuses is recorded as invalid instead of
    /// making the whole block invalid.
    public var ordered: Bool = false

    static let domain = Array("plexus-block-v1".utf8)
    static let orderedDomain = Array("plexus-block-v2".utf8)

    public func encode(to w: inout CanonicalWriter) {
        w.write(fixed: ordered ? Self.orderedDomain : Self.domain)
        w.write(chainId)
        w.write(height)
        w.write(previousHash)
        w.write(timeMillis)
        w.write(txCount)
        w.write(txRoot)
        w.write(stateRoot)
        w.write(orderer)
    }

    public init(from r: inout CanonicalReader) throws {
        let domain = try r.readBytes(count: Self.domain.count)
        guard domain == Self.domain || domain == Self.orderedDomain else {
            throw PlexusError(.malformed, "not a Plexus block header")
        }
        ordered = domain == Self.orderedDomain
        chainId = try r.readString(limit: 64)
        height = try r.readUInt64()
        previousHash = try r.readHash()
        timeMillis = try r.readUInt64()
        txCount = try r.readUInt32()
        txRoot = try r.readHash()
        stateRoot = try r.readHash()
        orderer = try r.readAddress()
    }

    public init(chainId: String, height: UInt64, previousHash: Hash256, timeMillis: UInt64, txCount: UInt32, txRoot: Hash256, stateRoot: Hash256, orderer: Address,
                ordered: Bool = false) {
        self.ordered = ordered
        self.chainId = chainId
        self.height = height
        self.previousHash = previousHash
        self.timeMillis = timeMillis
        self.txCount = txCount
        self.txRoot = txRoot
        self.stateRoot = stateRoot
        self.orderer = orderer
    }

    /// The block hash: SHA-256 of the canonical header.
    public var hash: Hash256 { Hash256.of(canonicalBytes) }
}

/// A header, the orderer's signature over its hash, and the transactions.
public struct Block: Sendable, Hashable, CanonicalCodable {
    public var header: BlockHeader
    /// Ed25519 by `header.orderer` over the header hash.
    public var signature: Signature
    public var transactions: [Transaction]

    public init(header: BlockHeader, signature: Signature, transactions: [Transaction]) {
        self.header = header
        self.signature = signature
        self.transactions = transactions
    }

    /// Merkle root of the transactions' hashes.
    public static func txRoot(_ hashes: [Hash256]) -> Hash256 { MerkleRoot.of(hashes) }

    /// Whether the orderer's signature is valid.
    public var hasValidSignature: Bool {
        header.orderer.verifies(signature, over: header.hash.bytes)
    }

    public func encode(to w: inout CanonicalWriter) {
        header.encode(to: &w)
        w.write(signature)
        w.write(array: transactions)
    }

    public init(from r: inout CanonicalReader) throws {
        header = try BlockHeader(from: &r)
        signature = try r.readSignature()
        transactions = try r.readArray(of: Transaction.self, limit: 1_000_000)
        guard transactions.count == Int(header.txCount) else {
            throw PlexusError(.malformed, "block \(header.height) says \(header.txCount) transactions but holds \(transactions.count)")
        }
    }
}
