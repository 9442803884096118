import PlexusCore

/// A node's signed account of the work it did for one request, countersigned
/// by the gateway that routed it. Settlement pays from these.
///
/// When a request fails over mid-stream, each node that produced tokens signs
/// a receipt for its own share under the same `requestId`; `firstOutputToken`
/// says where its share of the output begins. A request id settles once.
public struct Receipt: Sendable, Hashable, Codable {
    /// Chosen by the gateway, unique per request.
    public var requestId: Hash256
    /// SHA-256 of the request as the node received it.
    public var requestHash: Hash256
    /// The account whose escrow pays.
    public var requestor: Address
    /// The node's key (as registered).
    public var node: Address
    /// The model card's weights hash.
    public var modelHash: Hash256
    /// Prompt tokens this node processed.
    public var inputTokens: UInt64
    /// Tokens this node generated.
    public var outputTokens: UInt64
    /// Index of this node's first generated token in the whole output.
    public var firstOutputToken: UInt64
    /// Prices per million input and output tokens, in base units.
    public var priceIn: Amount
    public var priceOut: Amount
    /// SHA-256 of the token ids this node generated.
    public var outputHash: Hash256
    /// When the node finished, in milliseconds since the epoch.
    public var timeMillis: UInt64
    /// What the node commits to about its computation (receipt format 2); nil in a
    /// format-1 receipt, signed before commitments existed.
    public var commitment: ReceiptCommitment?
    /// A shard's part of a pipeline (receipt format 3, with a commitment): its layers and the
    /// roots over the hidden states it received and sent.
    public var shard: ShardWork?
    public var nodeSignature: Signature
    /// The gateway's key and its countersignature.
    public var gateway: Address
    public var gatewaySignature: Signature

    public init(requestId: Hash256, requestHash: Hash256, requestor: Address, node: Address, modelHash: Hash256,
                inputTokens: UInt64, outputTokens: UInt64, firstOutputToken: UInt64 = 0,
                priceIn: Amount, priceOut: Amount, outputHash: Hash256, timeMillis: UInt64, commitment: ReceiptCommitment? = nil) {
        self.requestId = requestId
        self.requestHash = requestHash
        self.requestor = requestor
        self.node = node
        self.modelHash = modelHash
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.firstOutputToken = firstOutputToken
        self.priceIn = priceIn
        self.priceOut = priceOut
        self.outputHash = outputHash
        self.timeMillis = timeMillis
        self.commitment = commitment
        shard = nil
        nodeSignature = .empty
        gateway = .treasury
        gatewaySignature = .empty
    }

    static let nodeDomain = Array("plexus-receipt-v1".utf8)
    static let gatewayDomain = Array("plexus-receipt-countersign-v1".utf8)
    static let nodeDomain2 = Array("plexus-receipt-v2".utf8)
    static let gatewayDomain2 = Array("plexus-receipt-countersign-v2".utf8)
    static let nodeDomain3 = Array("plexus-receipt-v3".utf8)
    static let gatewayDomain3 = Array("plexus-receipt-countersign-v3".utf8)

    /// 1: without a commitment (as signed before commitments existed); 2: with one; 3: a
    /// shard's, with its commitment and its `shard` work.
    public var format: UInt8 { commitment == nil ? 1 : shard == nil ? 2 : 3 }

    /// The signed fields after the body: the commitment and a shard's work, as the format has them.
    private func encodeExtensions(to w: inout CanonicalWriter) {
        guard let commitment else { return }
        commitment.encode(to: &w)
        shard?.encode(to: &w)
    }

    /// What the node signs: every field but the signatures and the gateway.
    public func nodeSigningBytes(chainId: String) -> [UInt8] {
        var w = CanonicalWriter(capacity: 360)
        w.write(fixed: [Self.nodeDomain, Self.nodeDomain2, Self.nodeDomain3][Int(format) - 1])
        w.write(chainId)
        encodeBody(to: &w)
        encodeExtensions(to: &w)
        return w.bytes
    }

    /// What the gateway signs: the node-signed receipt, its signature and the gateway key.
    public func gatewaySigningBytes(chainId: String) -> [UInt8] {
        var w = CanonicalWriter(capacity: 460)
        w.write(fixed: [Self.gatewayDomain, Self.gatewayDomain2, Self.gatewayDomain3][Int(format) - 1])
        w.write(chainId)
        encodeBody(to: &w)
        encodeExtensions(to: &w)
        w.write(nodeSignature)
        w.write(gateway)
        return w.bytes
    }

    func encodeBody(to w: inout CanonicalWriter) {
        w.write(requestId)
        w.write(requestHash)
        w.write(requestor)
        w.write(node)
        w.write(modelHash)
        w.write(inputTokens)
        w.write(outputTokens)
        w.write(firstOutputToken)
        w.write(priceIn)
        w.write(priceOut)
        w.write(outputHash)
        w.write(timeMillis)
    }

    /// Signs as the node; `key` must be the receipt's node key.
    public mutating func signAsNode(_ key: KeyPair, chainId: String) {
        precondition(key.address == node, "the receipt names another node")
        nodeSignature = key.sign(nodeSigningBytes(chainId: chainId))
    }

    /// Countersigns as the gateway `key`.
    public mutating func countersign(_ key: KeyPair, chainId: String) {
        gateway = key.address
        gatewaySignature = key.sign(gatewaySigningBytes(chainId: chainId))
    }

    /// Throws `bad_signature` unless both signatures verify.
    public func verify(chainId: String) throws {
        guard node.verifies(nodeSignature, over: nodeSigningBytes(chainId: chainId)) else {
            throw PlexusError(.badSignature, "the node signature on receipt \(requestId.hex.prefix(16)) does not verify")
        }
        guard gateway.verifies(gatewaySignature, over: gatewaySigningBytes(chainId: chainId)) else {
            throw PlexusError(.badSignature, "the gateway countersignature on receipt \(requestId.hex.prefix(16)) does not verify")
        }
    }

    /// Whether this share sampled output tokens (a whole-model node, or a pipeline's last
    /// shard) rather than relayed hidden states.
    public var samples: Bool { shard.map(\.layers.isLast) ?? true }

    /// What this share of the request costs at its prices.
    public func cost() throws -> Amount {
        try Pricing.cost(inputTokens: inputTokens, outputTokens: outputTokens, priceIn: priceIn, priceOut: priceOut)
    }
}

/// A node's commitment in its receipt: the Merkle root over the hashes of its final hidden
/// states by chunks (`Commitment` in the engine), the chunk count, and whether the backend
/// can be re-executed bit for bit (the built-in engine; not an upstream server).
public struct ReceiptCommitment: Sendable, Hashable, Codable, CanonicalCodable {
    public var root: Hash256
    public var chunks: UInt32
    public var exact: Bool

    public init(root: Hash256, chunks: UInt32, exact: Bool) {
        self.root = root
        self.chunks = chunks
        self.exact = exact
    }

    /// What a backend that cannot be re-executed claims: nothing but that.
    public static let inexact = ReceiptCommitment(root: .zero, chunks: 0, exact: false)

    public func encode(to w: inout CanonicalWriter) {
        w.write(root); w.write(chunks); w.write(exact)
    }

    public init(from r: inout CanonicalReader) throws {
        root = try r.readHash()
        chunks = try r.readUInt32()
        exact = try r.readBool()
    }
}

/// What a shard did for a request: its layers of the model and the Merkle roots (by commitment
/// chunks) over the hidden states it received (zero for the first shard, which takes tokens)
/// and those it sent on (zero for the last, whose states are its commitment). A verifier that
/// re-executes the pipeline finds the first shard whose sent states differ.
public struct ShardWork: Sendable, Hashable, Codable, CanonicalCodable {
    public var layers: LayerSpan
    public var received: Hash256
    public var sent: Hash256
    /// Positions the shard ran.
    public var positions: UInt64

    public init(layers: LayerSpan, received: Hash256, sent: Hash256, positions: UInt64) {
        self.layers = layers
        self.received = received
        self.sent = sent
        self.positions = positions
    }

    public func encode(to w: inout CanonicalWriter) {
        layers.encode(to: &w); w.write(received); w.write(sent); w.write(positions)
    }

    public init(from r: inout CanonicalReader) throws {
        layers = try LayerSpan(from: &r)
        received = try r.readHash()
        sent = try r.readHash()
        positions = try r.readUInt64()
    }
}

/// A receipt in any format, with its format byte first: how receipts travel wherever
/// both formats may meet (versioned settle transactions, the gateway's records, the node's
/// final event).
public struct VersionedReceipt: Sendable, Hashable, CanonicalCodable {
    public var receipt: Receipt

    public init(_ receipt: Receipt) { self.receipt = receipt }

    public func encode(to w: inout CanonicalWriter) {
        w.write(receipt.format)
        receipt.encode(to: &w)
        if let c = receipt.commitment {
            c.encode(to: &w)
            receipt.shard?.encode(to: &w)
        }
    }

    public init(from r: inout CanonicalReader) throws {
        let format = try r.readUInt8()
        guard (1...3).contains(format) else { throw PlexusError(.malformed, "unknown receipt format \(format)") }
        receipt = try Receipt(from: &r)
        if format >= 2 { receipt.commitment = try ReceiptCommitment(from: &r) }
        if format == 3 { receipt.shard = try ShardWork(from: &r) }
    }
}

/// The format-1 layout (no format byte, no commitment): what settle transactions of
/// kind `settle` carry, so blocks written before commitments decode as they were.
extension Receipt: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        encodeBody(to: &w)
        w.write(nodeSignature)
        w.write(gateway)
        w.write(gatewaySignature)
    }

    public init(from r: inout CanonicalReader) throws {
        requestId = try r.readHash()
        requestHash = try r.readHash()
        requestor = try r.readAddress()
        node = try r.readAddress()
        modelHash = try r.readHash()
        inputTokens = try r.readUInt64()
        outputTokens = try r.readUInt64()
        firstOutputToken = try r.readUInt64()
        priceIn = try r.readAmount()
        priceOut = try r.readAmount()
        outputHash = try r.readHash()
        timeMillis = try r.readUInt64()
        nodeSignature = try r.readSignature()
        gateway = try r.readAddress()
        gatewaySignature = try r.readSignature()
        commitment = nil
        shard = nil
    }
}
