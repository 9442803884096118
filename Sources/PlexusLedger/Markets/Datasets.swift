import PlexusCore

/// The data market's records: datasets (their Merkle root, size, licence, price and paid
/// contributors — never their bytes) and access grants, whose price is held until delivery is
/// proven. See `LedgerState+Data`.
public enum DataMarket {
    public static let maxContributors = 32
    public static let minChunkSize: UInt32 = 1_024
    public static let maxChunkSize: UInt32 = 16 << 20
    public static let maxChunks: UInt32 = 1 << 24
    /// Datasets one model card may cite.
    public static let maxCitations = 4

    /// A model's royalty shared with the contributors of the datasets it cites: `share` of it
    /// (⌊royalty · shareBps/10⁴⌋) in equal parts per dataset (the remainder to the first), each
    /// split by its contributors' weights; the creator keeps the rest. The payouts add up to `royalty`.
    public static func royaltyPayouts(_ royalty: Amount, creator: Address, shareBps: UInt64, datasets: [Dataset]) -> [Payout] {
        guard !datasets.isEmpty, shareBps > 0 else { return royalty.isZero ? [] : [Payout(account: creator, amount: royalty)] }
        let shared = UInt64(10_000).dividingFullWidth(royalty.units.multipliedFullWidth(by: min(shareBps, 10_000))).quotient
        let each = shared / UInt64(datasets.count)
        var out: [Payout] = []
        for (i, d) in datasets.enumerated() {
            let part = i == 0 ? shared - each * UInt64(datasets.count - 1) : each
            out += split(Amount(units: part), d.manifest.contributors).filter { !$0.amount.isZero }
        }
        if royalty.units > shared { out.append(Payout(account: creator, amount: Amount(units: royalty.units - shared))) }
        return out
    }

    /// `amount` split by weight in whole base units: each contributor gets ⌊amount·w/W⌋, and
    /// the units left over (fewer than there are contributors) go one each to the contributors
    /// in the manifest's order. The parts add up to `amount` exactly.
    public static func split(_ amount: Amount, _ contributors: [Contributor]) -> [Payout] {
        let total = contributors.reduce(UInt64(0)) { $0 &+ UInt64($1.weight) }
        guard total > 0 else { return [] }
        var parts = contributors.map { c in
            Payout(account: c.account, amount: Amount(units: total.dividingFullWidth(amount.units.multipliedFullWidth(by: UInt64(c.weight))).quotient))
        }
        var left = amount.units - parts.reduce(0) { $0 + $1.amount.units }
        var i = 0
        while left > 0 {
            parts[i].amount = Amount(units: parts[i].amount.units + 1)
            left -= 1
            i = (i + 1) % parts.count
        }
        return parts
    }

    static let grantDomain = Array("plexus-data-grant-v1".utf8)
    static let deliveryDomain = Array("plexus-data-delivered-v1".utf8)
    static let datasetDomain = Array("plexus-dataset-v1".utf8)

    /// A dataset's id: its owner, name and version.
    public static func datasetId(owner: Address, name: String, version: UInt32) -> Hash256 {
        var w = CanonicalWriter(capacity: 96)
        w.write(fixed: datasetDomain); w.write(owner); w.write(name); w.write(version)
        return Hash256.of(w.bytes)
    }

    /// A grant's id: its buyer and the nonce of the transaction that bought it.
    public static func grantId(buyer: Address, nonce: UInt64) -> Hash256 {
        var w = CanonicalWriter(capacity: 64)
        w.write(fixed: grantDomain); w.write(buyer); w.write(nonce)
        return Hash256.of(w.bytes)
    }

    static let chunkDomain = Array("plexus-data-chunk-v1".utf8)

    /// What a grant's buyer signs to fetch chunk `index` from its server.
    public static func chunkRequestBytes(chainId: String, grant: Hash256, index: UInt32) -> [UInt8] {
        var w = CanonicalWriter(capacity: 96)
        w.write(fixed: chunkDomain); w.write(chainId); w.write(grant); w.write(index)
        return w.bytes
    }

    /// The SHA-256 of each chunk of `bytes` (the leaves of a dataset's Merkle root).
    public static func chunkHashes(_ bytes: [UInt8], chunkSize: Int) -> [Hash256] {
        stride(from: 0, to: bytes.count, by: chunkSize).map { Hash256.of(Array(bytes[$0..<min(bytes.count, $0 + chunkSize)])) }
    }

    /// For files laid end to end in the given order and cut into `chunkSize` chunks: how many
    /// chunks hold bytes of each file (a chunk across a boundary counts for both files; an empty
    /// file holds none). What a contributor added, as a weight.
    public static func chunksPerFile(sizes: [UInt64], chunkSize: UInt64) -> [UInt32] {
        guard chunkSize > 0 else { return sizes.map { _ in 0 } }
        var start: UInt64 = 0
        return sizes.map { size in
            defer { start &+= size }
            guard size > 0 else { return 0 }
            let first = start / chunkSize, last = (start + size - 1) / chunkSize
            return UInt32(clamping: last - first + 1)
        }
    }

    /// What a buyer signs once every chunk it received matched the dataset's root: the
    /// server's proof of delivery.
    public static func deliveryBytes(chainId: String, grant: Hash256, root: Hash256) -> [UInt8] {
        var w = CanonicalWriter(capacity: 128)
        w.write(fixed: deliveryDomain); w.write(chainId); w.write(grant); w.write(root)
        return w.bytes
    }
}

/// One contributor to a dataset and its weight in the split of every access paid.
public struct Contributor: Sendable, Hashable, Codable, CanonicalCodable {
    public var account: Address
    public var weight: UInt32

    public init(account: Address, weight: UInt32) {
        self.account = account
        self.weight = weight
    }

    public func encode(to w: inout CanonicalWriter) { w.write(account); w.write(weight) }
    public init(from r: inout CanonicalReader) throws {
        account = try r.readAddress()
        weight = try r.readUInt32()
    }
}

/// What `plexus data add` registers: the dataset's shape and terms.
public struct DatasetManifest: Sendable, Hashable, Codable, CanonicalCodable {
    public var name: String
    /// Merkle root over the chunks' SHA-256 hashes (`MerkleRoot`).
    public var root: Hash256
    public var size: UInt64
    public var chunkSize: UInt32
    public var chunks: UInt32
    /// An SPDX id, or "custom".
    public var license: String
    /// Per access.
    public var price: Amount
    public var contributors: [Contributor]
    /// The sum of the weights, as stated (it must be the sum).
    public var totalWeight: UInt64
    /// The dataset this one derives from (its id), if any.
    public var derivedFrom: Hash256?

    public init(name: String, root: Hash256, size: UInt64, chunkSize: UInt32, chunks: UInt32, license: String, price: Amount,
                contributors: [Contributor], totalWeight: UInt64, derivedFrom: Hash256? = nil) {
        self.name = name
        self.root = root
        self.size = size
        self.chunkSize = chunkSize
        self.chunks = chunks
        self.license = license
        self.price = price
        self.contributors = contributors
        self.totalWeight = totalWeight
        self.derivedFrom = derivedFrom
    }

    /// Throws unless the manifest is consistent: a name, 1...32 distinct contributors of
    /// weight 1 or more whose weights add up to `totalWeight`, a chunk size of 1 KiB...16 MiB
    /// and as many chunks as the size needs, a licence named.
    public func validate() throws {
        guard !name.isEmpty, name.utf8.count <= Registry.maxName else { throw PlexusError(.malformed, "a dataset's name is 1...\(Registry.maxName) bytes") }
        guard !license.isEmpty, license.utf8.count <= Registry.maxName else { throw PlexusError(.malformed, "a dataset names its licence (an SPDX id or \"custom\")") }
        guard (1...DataMarket.maxContributors).contains(contributors.count), Set(contributors.map(\.account)).count == contributors.count,
              contributors.allSatisfy({ $0.weight >= 1 && $0.account != .treasury }) else {
            throw PlexusError(.outOfRange, "a dataset has 1...\(DataMarket.maxContributors) distinct contributors, each of weight 1 or more")
        }
        let sum = contributors.reduce(UInt64(0)) { $0 + UInt64($1.weight) }
        guard sum == totalWeight else { throw PlexusError(.malformed, "the weights add up to \(sum), not the \(totalWeight) stated") }
        guard (DataMarket.minChunkSize...DataMarket.maxChunkSize).contains(chunkSize), size > 0, chunks >= 1, chunks <= DataMarket.maxChunks else {
            throw PlexusError(.outOfRange, "chunks are 1 KiB...16 MiB, at most \(DataMarket.maxChunks) of them, and a dataset holds a byte at least")
        }
        let needed = (size + UInt64(chunkSize) - 1) / UInt64(chunkSize)
        guard needed == UInt64(chunks) else { throw PlexusError(.malformed, "\(size) bytes in chunks of \(chunkSize) are \(needed) chunks, not \(chunks)") }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(name); w.write(root); w.write(size); w.write(chunkSize); w.write(chunks); w.write(license); w.write(price)
        w.write(array: contributors); w.write(totalWeight); w.write(optional: derivedFrom)
    }

    public init(from r: inout CanonicalReader) throws {
        name = try r.readString(limit: Registry.maxName)
        root = try r.readHash()
        size = try r.readUInt64()
        chunkSize = try r.readUInt32()
        chunks = try r.readUInt32()
        license = try r.readString(limit: Registry.maxName)
        price = try r.readAmount()
        contributors = try r.readArray(of: Contributor.self, limit: DataMarket.maxContributors)
        totalWeight = try r.readUInt64()
        derivedFrom = try r.readOptional(Hash256.self)
    }
}

/// A registered dataset.
public struct Dataset: Sendable, Hashable, Codable, CanonicalCodable {
    public var id: Hash256
    public var owner: Address
    public var version: UInt32
    public var manifest: DatasetManifest
    public var registeredHeight: UInt64
    /// Delisted (by governance, for a licence violation): no access is sold.
    public var delisted: Bool

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(owner); w.write(version); w.write(manifest); w.write(registeredHeight); w.write(delisted)
    }

    public init(id: Hash256, owner: Address, version: UInt32, manifest: DatasetManifest, registeredHeight: UInt64, delisted: Bool = false) {
        self.id = id
        self.owner = owner
        self.version = version
        self.manifest = manifest
        self.registeredHeight = registeredHeight
        self.delisted = delisted
    }

    public init(from r: inout CanonicalReader) throws {
        id = try r.readHash()
        owner = try r.readAddress()
        version = try r.readUInt32()
        manifest = try DatasetManifest(from: &r)
        registeredHeight = try r.readUInt64()
        delisted = try r.readBool()
    }
}

/// Access to a dataset bought from a server: its price held until delivery is proven.
public struct DataGrant: Sendable, Hashable, Codable, CanonicalCodable {
    public enum Status: UInt8, Sendable, Codable {
        /// Paid and held; the server delivers.
        case open = 0
        /// Delivered: paid out to the contributors.
        case delivered = 1
        /// Not delivered by the deadline: back to the buyer.
        case refunded = 2
    }

    public var id: Hash256
    public var dataset: Hash256
    public var buyer: Address
    public var server: Address
    public var amount: Amount
    public var deadline: UInt64
    public var status: Status

    public init(id: Hash256, dataset: Hash256, buyer: Address, server: Address, amount: Amount, deadline: UInt64, status: Status = .open) {
        self.id = id
        self.dataset = dataset
        self.buyer = buyer
        self.server = server
        self.amount = amount
        self.deadline = deadline
        self.status = status
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(dataset); w.write(buyer); w.write(server); w.write(amount); w.write(deadline); w.write(status.rawValue)
    }

    public init(from r: inout CanonicalReader) throws {
        id = try r.readHash()
        dataset = try r.readHash()
        buyer = try r.readAddress()
        server = try r.readAddress()
        amount = try r.readAmount()
        deadline = try r.readUInt64()
        guard let s = Status(rawValue: try r.readUInt8()) else { throw PlexusError(.malformed, "unknown grant status") }
        status = s
    }
}
