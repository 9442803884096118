import PlexusCore

/// One model a node serves, at its prices.
public struct Offer: Sendable, Hashable, Codable, CanonicalCodable {
    /// A registered model card's id.
    public var model: String
    /// Base units per million input and output tokens.
    public var priceIn: Amount
    public var priceOut: Amount
    /// Requests served at once.
    public var concurrency: UInt32
    /// Longest context the node accepts, in tokens.
    public var contextLength: UInt32
    /// Privacy tier, e.g. "standard" or "no-logs".
    public var privacy: String
    /// Where the node runs, e.g. "eu-west".
    public var region: String
    /// The layers served, for a shard of a pipeline; nil: the whole model.
    public var layers: LayerSpan?

    public init(model: String, priceIn: Amount, priceOut: Amount, concurrency: UInt32 = 4, contextLength: UInt32 = 8192,
                privacy: String = "standard", region: String = "local", layers: LayerSpan? = nil) {
        self.layers = layers
        self.model = model
        self.priceIn = priceIn
        self.priceOut = priceOut
        self.concurrency = concurrency
        self.contextLength = contextLength
        self.privacy = privacy
        self.region = region
    }

    /// The format-1 layout (without `layers`: they travel beside the offers, see `LayerSpan.write`).
    public func encode(to w: inout CanonicalWriter) {
        w.write(model); w.write(priceIn); w.write(priceOut); w.write(concurrency); w.write(contextLength)
        w.write(privacy); w.write(region)
    }

    public init(from r: inout CanonicalReader) throws {
        model = try r.readString(limit: Registry.maxName)
        priceIn = try r.readAmount()
        priceOut = try r.readAmount()
        concurrency = try r.readUInt32()
        contextLength = try r.readUInt32()
        privacy = try r.readString(limit: Registry.maxName)
        region = try r.readString(limit: Registry.maxName)
        layers = nil
    }
}

/// Layers [start, end) of a model of `total` layers: what a shard serves. The first shard
/// also holds the embedding and tokenizer, the last the output norm, logits and sampler.
public struct LayerSpan: Sendable, Hashable, Codable, CanonicalCodable, CustomStringConvertible {
    public var start: UInt32
    public var end: UInt32
    public var total: UInt32

    public init(start: UInt32, end: UInt32, total: UInt32) {
        self.start = start
        self.end = end
        self.total = total
    }

    public var range: Range<Int> { Int(start)..<Int(end) }
    public var isFirst: Bool { start == 0 }
    public var isLast: Bool { end == total }
    public var description: String { "\(start)-\(end)" }

    /// Throws unless 0 ≤ start < end ≤ total ≤ 65536.
    public func validate() throws {
        guard start < end, end <= total, total <= 65_536 else {
            throw PlexusError(.outOfRange, "layers \(start)-\(end) of \(total) are not a range of the model's layers")
        }
    }

    public func encode(to w: inout CanonicalWriter) { w.write(start); w.write(end); w.write(total) }

    public init(from r: inout CanonicalReader) throws {
        start = try r.readUInt32()
        end = try r.readUInt32()
        total = try r.readUInt32()
    }

    /// Whether any offer serves part of a model (and needs the layered encodings).
    public static func anyIn(_ offers: [Offer]) -> Bool { offers.contains { $0.layers != nil } }

    /// The offers' layers, one optional per offer, after the offers themselves.
    public static func write(_ offers: [Offer], to w: inout CanonicalWriter) {
        w.write(UInt32(offers.count))
        for o in offers {
            w.write(o.layers != nil)
            o.layers?.encode(to: &w)
        }
    }

    /// Reads what `write` wrote into `offers`.
    public static func read(into offers: inout [Offer], from r: inout CanonicalReader) throws {
        guard Int(try r.readUInt32()) == offers.count else { throw PlexusError(.malformed, "layer spans do not match the offers") }
        for i in offers.indices where try r.readBool() { offers[i].layers = try LayerSpan(from: &r) }
    }
}

/// A node's registration: who operates it, the key that signs its receipts,
/// where it listens and what it offers.
public struct NodeRecord: Sendable, Hashable, Codable, CanonicalCodable {
    /// The operator's account (pays fees, holds the stake, is paid).
    public var owner: Address
    /// The key that signs receipts and envelopes' answers.
    public var nodeKey: Address
    public var endpoint: String
    public var offers: [Offer]
    public var registeredHeight: UInt64

    /// Offers of whole models encode as records did before layers existed; shard offers add
    /// their spans at the end.
    public func encode(to w: inout CanonicalWriter) {
        w.write(owner); w.write(nodeKey); w.write(endpoint); w.write(array: offers); w.write(registeredHeight)
        if LayerSpan.anyIn(offers) { LayerSpan.write(offers, to: &w) }
    }

    public init(owner: Address, nodeKey: Address, endpoint: String, offers: [Offer], registeredHeight: UInt64) {
        self.owner = owner
        self.nodeKey = nodeKey
        self.endpoint = endpoint
        self.offers = offers
        self.registeredHeight = registeredHeight
    }

    public init(from r: inout CanonicalReader) throws {
        owner = try r.readAddress()
        nodeKey = try r.readAddress()
        endpoint = try r.readString(limit: Registry.maxEndpoint)
        offers = try r.readArray(of: Offer.self, limit: Registry.maxOffers)
        registeredHeight = try r.readUInt64()
        if r.remaining > 0 {
            try LayerSpan.read(into: &offers, from: &r)
            guard LayerSpan.anyIn(offers) else { throw PlexusError(.malformed, "a node record lists layer spans without one") }
        }
    }

    /// The offer for `model`, if any.
    public func offer(for model: String) -> Offer? { offers.first { $0.model == model } }
}

/// A model version anyone may serve, with who gets its royalty.
public struct ModelCard: Sendable, Hashable, Codable, CanonicalCodable {
    public var id: String
    /// SHA-256 of the weights file.
    public var weightsHash: Hash256
    public var architecture: String
    public var quantization: String
    public var contextLength: UInt32
    public var license: String
    public var capabilities: [String]
    public var creator: Address
    /// Share of every charge for this model paid to `creator`, in basis points.
    public var royaltyBps: UInt16

    public init(id: String, weightsHash: Hash256, architecture: String, quantization: String, contextLength: UInt32,
                license: String, capabilities: [String], creator: Address, royaltyBps: UInt16) {
        self.id = id
        self.weightsHash = weightsHash
        self.architecture = architecture
        self.quantization = quantization
        self.contextLength = contextLength
        self.license = license
        self.capabilities = capabilities
        self.creator = creator
        self.royaltyBps = royaltyBps
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(weightsHash); w.write(architecture); w.write(quantization); w.write(contextLength)
        w.write(license)
        w.write(UInt32(capabilities.count))
        for c in capabilities { w.write(c) }
        w.write(creator); w.write(royaltyBps)
    }

    public init(from r: inout CanonicalReader) throws {
        id = try r.readString(limit: Registry.maxName)
        weightsHash = try r.readHash()
        architecture = try r.readString(limit: Registry.maxName)
        quantization = try r.readString(limit: Registry.maxName)
        contextLength = try r.readUInt32()
        license = try r.readString(limit: Registry.maxName)
        let n = Int(try r.readUInt32())
        guard n <= Registry.maxCapabilities else { throw PlexusError(.tooLarge, "a model card lists at most \(Registry.maxCapabilities) capabilities") }
        capabilities = try (0..<n).map { _ in try r.readString(limit: Registry.maxName) }
        creator = try r.readAddress()
        royaltyBps = try r.readUInt16()
    }
}

/// A gateway key bound to the account that operates it.
public struct GatewayRecord: Sendable, Hashable, Codable, CanonicalCodable {
    public var key: Address
    public var owner: Address
    public var registeredHeight: UInt64

    public init(key: Address, owner: Address, registeredHeight: UInt64) {
        self.key = key
        self.owner = owner
        self.registeredHeight = registeredHeight
    }

    public func encode(to w: inout CanonicalWriter) { w.write(key); w.write(owner); w.write(registeredHeight) }

    public init(from r: inout CanonicalReader) throws {
        key = try r.readAddress()
        owner = try r.readAddress()
        registeredHeight = try r.readUInt64()
    }
}

/// One payment out of a settled request.
public struct Payout: Sendable, Hashable, Codable, CanonicalCodable {
    public var account: Address
    public var amount: Amount

    public init(account: Address, amount: Amount) {
        self.account = account
        self.amount = amount
    }

    public func encode(to w: inout CanonicalWriter) { w.write(account); w.write(amount) }
    public init(from r: inout CanonicalReader) throws {
        account = try r.readAddress()
        amount = try r.readAmount()
    }
}

/// A request's settlement: charged from escrow into pending, paid out after
/// the challenge window. Kept after payment so that the id never settles again.
public struct Settlement: Sendable, Hashable, Codable, CanonicalCodable {
    public enum Status: String, Sendable, Codable {
        /// Charged, in its challenge window.
        case pending
        /// Paid out.
        case final
        /// Frozen by a challenge until its dispute is decided.
        case disputed
        /// Fraud upheld: the charge went back to the requestor's escrow.
        case refunded

        var code: UInt8 {
            switch self {
            case .pending: 0
            case .final: 1
            case .disputed: 2
            case .refunded: 3
            }
        }
    }

    public var requestId: Hash256
    public var requestor: Address
    public var gateway: Address
    public var model: String
    /// Everything taken from escrow: the payouts plus the fee.
    public var charge: Amount
    /// Node operators and the model's creator, in receipt order (creator last).
    public var payouts: [Payout]
    /// The protocol fee, to the treasury.
    public var fee: Amount
    /// The nodes (keys) that served, with their output tokens, in order.
    public var nodes: [Address]
    public var outputTokens: [UInt64]
    public var settledHeight: UInt64
    public var finalHeight: UInt64
    public var status: Status

    public func encode(to w: inout CanonicalWriter) {
        w.write(requestId); w.write(requestor); w.write(gateway); w.write(model); w.write(charge)
        w.write(array: payouts); w.write(fee)
        w.write(UInt32(nodes.count))
        for (n, t) in zip(nodes, outputTokens) { w.write(n); w.write(t) }
        w.write(settledHeight); w.write(finalHeight); w.write(status.code)
    }

    public init(requestId: Hash256, requestor: Address, gateway: Address, model: String, charge: Amount, payouts: [Payout],
                fee: Amount, nodes: [Address], outputTokens: [UInt64], settledHeight: UInt64, finalHeight: UInt64, status: Status) {
        self.requestId = requestId
        self.requestor = requestor
        self.gateway = gateway
        self.model = model
        self.charge = charge
        self.payouts = payouts
        self.fee = fee
        self.nodes = nodes
        self.outputTokens = outputTokens
        self.settledHeight = settledHeight
        self.finalHeight = finalHeight
        self.status = status
    }

    public init(from r: inout CanonicalReader) throws {
        requestId = try r.readHash()
        requestor = try r.readAddress()
        gateway = try r.readAddress()
        model = try r.readString(limit: Registry.maxName)
        charge = try r.readAmount()
        payouts = try r.readArray(of: Payout.self, limit: Registry.maxParts + 1)
        fee = try r.readAmount()
        let n = Int(try r.readUInt32())
        guard n <= Registry.maxParts else { throw PlexusError(.tooLarge, "too many parts in a settlement") }
        var ns: [Address] = [], ts: [UInt64] = []
        for _ in 0..<n { ns.append(try r.readAddress()); ts.append(try r.readUInt64()) }
        nodes = ns
        outputTokens = ts
        settledHeight = try r.readUInt64()
        finalHeight = try r.readUInt64()
        switch try r.readUInt8() {
        case 0: status = .pending
        case 1: status = .final
        case 2: status = .disputed
        case 3: status = .refunded
        case let v: throw PlexusError(.malformed, "unknown settlement status \(v)")
        }
    }
}

/// Limits on registry records, part of the protocol.
public enum Registry {
    public static let maxName = 128
    public static let maxEndpoint = 512
    public static let maxOffers = 16
    public static let maxCapabilities = 16
    /// Most nodes that may share one request (failover hand-overs + 1).
    public static let maxParts = 16

    static let nodeKeyDomain = Array("plexus-node-key-v1".utf8)
    static let gatewayKeyDomain = Array("plexus-gateway-key-v1".utf8)

    /// What a node key signs to consent to being bound to `owner` on `chainId`.
    public static func nodeKeyProofBytes(chainId: String, owner: Address) -> [UInt8] {
        var w = CanonicalWriter(capacity: 96)
        w.write(fixed: nodeKeyDomain); w.write(chainId); w.write(owner)
        return w.bytes
    }

    /// What a gateway key signs to consent to being bound to `owner` on `chainId`.
    public static func gatewayKeyProofBytes(chainId: String, owner: Address) -> [UInt8] {
        var w = CanonicalWriter(capacity: 96)
        w.write(fixed: gatewayKeyDomain); w.write(chainId); w.write(owner)
        return w.bytes
    }
}

/// A record kept in ledger state besides accounts, by its storage key.
enum RecordKey: Hashable, Comparable {
    case node(Address)  // by owner
    case model(String)
    case gateway(Address)  // by gateway key
    case settlement(Hash256)
    case voter(Address)
    case govTotals
    case proposal(Hash256)
    case ballot(Hash256, Address)
    case community(String)
    case member(String, Address)
    case approval(String, Address)
    case listed(String)
    case verifier(Address)
    case standing(Address)
    case check(Hash256)
    case dispute(Hash256)
    case agent(Address)
    case callPayment(Hash256)
    case spot(String)
    case spotCharge(Hash256)
    case evaluations(String)
    case dataset(Hash256)
    case grant(Hash256)
    case provenance(String)
    case service(Address, String)
    case paramLog

    var bytes: [UInt8] {
        switch self {
        case let .node(a): [UInt8(ascii: "n")] + a.bytes
        case let .model(id): [UInt8(ascii: "m")] + Array(id.utf8)
        case let .gateway(a): [UInt8(ascii: "g")] + a.bytes
        case let .settlement(h): [UInt8(ascii: "s")] + h.bytes
        case let .voter(a): [UInt8(ascii: "V")] + a.bytes
        case .govTotals: [UInt8(ascii: "T")]
        case let .proposal(h): [UInt8(ascii: "P")] + h.bytes
        case let .ballot(h, a): [UInt8(ascii: "B")] + h.bytes + a.bytes
        case let .community(id): [UInt8(ascii: "C")] + Array(id.utf8)
        case let .member(c, a): [UInt8(ascii: "M")] + a.bytes + Array(c.utf8)
        case let .approval(c, a): [UInt8(ascii: "A")] + a.bytes + Array(c.utf8)
        case let .listed(id): [UInt8(ascii: "L")] + Array(id.utf8)
        case let .verifier(a): [UInt8(ascii: "E")] + a.bytes
        case let .standing(a): [UInt8(ascii: "R")] + a.bytes
        case let .check(h): [UInt8(ascii: "c")] + h.bytes
        case let .dispute(h): [UInt8(ascii: "D")] + h.bytes
        case let .agent(a): [UInt8(ascii: "a")] + a.bytes
        case let .callPayment(h): [UInt8(ascii: "p")] + h.bytes
        case let .spot(id): [UInt8(ascii: "S")] + Array(id.utf8)
        case let .spotCharge(h): [UInt8(ascii: "q")] + h.bytes
        case let .evaluations(id): [UInt8(ascii: "v")] + Array(id.utf8)
        case let .dataset(h): [UInt8(ascii: "d")] + h.bytes
        case let .grant(h): [UInt8(ascii: "w")] + h.bytes
        case let .provenance(id): [UInt8(ascii: "o")] + Array(id.utf8)
        case let .service(node, model): [UInt8(ascii: "u")] + node.bytes + Array(model.utf8)
        case .paramLog: [UInt8(ascii: "H")]
        }
    }

    init(bytes: [UInt8]) throws {
        guard let tag = bytes.first else { throw PlexusError(.malformed, "empty record key") }
        let rest = Array(bytes.dropFirst())
        func text(_ b: [UInt8]) throws -> String {
            guard let s = String(validating: b, as: UTF8.self) else { throw PlexusError(.malformed, "record key name is not UTF-8") }
            return s
        }
        func split() throws -> (Address, String) {
            guard rest.count > 32 else { throw PlexusError(.malformed, "record key too short") }
            return (try Address(bytes: Array(rest[0..<32])), try text(Array(rest[32...])))
        }
        switch tag {
        case UInt8(ascii: "n"): self = .node(try Address(bytes: rest))
        case UInt8(ascii: "m"): self = .model(try text(rest))
        case UInt8(ascii: "g"): self = .gateway(try Address(bytes: rest))
        case UInt8(ascii: "s"): self = .settlement(try Hash256(bytes: rest))
        case UInt8(ascii: "V"): self = .voter(try Address(bytes: rest))
        case UInt8(ascii: "T"): self = .govTotals
        case UInt8(ascii: "P"): self = .proposal(try Hash256(bytes: rest))
        case UInt8(ascii: "B"):
            guard rest.count == 64 else { throw PlexusError(.malformed, "ballot key has \(rest.count) bytes") }
            self = .ballot(try Hash256(bytes: Array(rest[0..<32])), try Address(bytes: Array(rest[32...])))
        case UInt8(ascii: "C"): self = .community(try text(rest))
        case UInt8(ascii: "M"): let (a, c) = try split(); self = .member(c, a)
        case UInt8(ascii: "A"): let (a, c) = try split(); self = .approval(c, a)
        case UInt8(ascii: "L"): self = .listed(try text(rest))
        case UInt8(ascii: "E"): self = .verifier(try Address(bytes: rest))
        case UInt8(ascii: "R"): self = .standing(try Address(bytes: rest))
        case UInt8(ascii: "c"): self = .check(try Hash256(bytes: rest))
        case UInt8(ascii: "D"): self = .dispute(try Hash256(bytes: rest))
        case UInt8(ascii: "a"): self = .agent(try Address(bytes: rest))
        case UInt8(ascii: "p"): self = .callPayment(try Hash256(bytes: rest))
        case UInt8(ascii: "S"): self = .spot(try text(rest))
        case UInt8(ascii: "q"): self = .spotCharge(try Hash256(bytes: rest))
        case UInt8(ascii: "v"): self = .evaluations(try text(rest))
        case UInt8(ascii: "d"): self = .dataset(try Hash256(bytes: rest))
        case UInt8(ascii: "w"): self = .grant(try Hash256(bytes: rest))
        case UInt8(ascii: "o"): self = .provenance(try text(rest))
        case UInt8(ascii: "u"): let (node, model) = try split(); self = .service(node, model)
        case UInt8(ascii: "H"):
            guard rest.isEmpty else { throw PlexusError(.malformed, "parameter log key has \(rest.count) extra bytes") }
            self = .paramLog
        default: throw PlexusError(.malformed, "unknown record key tag \(tag)")
        }
    }

    static func < (a: RecordKey, b: RecordKey) -> Bool { ByteOrder.less(a.bytes, b.bytes) }
}
