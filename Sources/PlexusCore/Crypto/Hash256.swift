import Crypto

/// A SHA-256 digest: 32 bytes, written as 64 lower-case hex characters.
public struct Hash256: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// The all-zero hash, used as the previous hash of the first block.
    public static let zero = Hash256(unchecked: [UInt8](repeating: 0, count: 32))

    /// Wraps 32 bytes; throws if the count is wrong.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw PlexusError(.malformed, "a hash has 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// Parses 64 hex characters.
    public init(hex: String) throws {
        try self.init(bytes: Hex.decode(hex))
    }

    /// SHA-256 of the given bytes.
    public static func of(_ data: [UInt8]) -> Hash256 {
        Hash256(unchecked: Array(SHA256.hash(data: data)))
    }

    /// SHA-256 of the concatenation of two hashes (Merkle interior node).
    public static func combine(_ a: Hash256, _ b: Hash256) -> Hash256 {
        var h = SHA256()
        h.update(data: a.bytes)
        h.update(data: b.bytes)
        return Hash256(unchecked: Array(h.finalize()))
    }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (a: Hash256, b: Hash256) -> Bool {
        ByteOrder.less(a.bytes, b.bytes)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(hex: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }
}

/// Binary Merkle root over an ordered list of leaves.
///
/// An odd node at the end of a level is promoted unchanged; leaves and
/// interior nodes are domain-separated so a leaf can never pose as a node.
public enum MerkleRoot {
    /// The root of `leaves`; `Hash256.zero` for an empty list.
    public static func of(_ leaves: [Hash256]) -> Hash256 {
        guard !leaves.isEmpty else { return .zero }
        var level = leaves.map { leaf -> Hash256 in
            var h = SHA256()
            h.update(data: [0x00])
            h.update(data: leaf.bytes)
            return Hash256(unchecked: Array(h.finalize()))
        }
        while level.count > 1 {
            var next = [Hash256]()
            next.reserveCapacity((level.count + 1) / 2)
            var i = 0
            while i < level.count {
                if i + 1 < level.count {
                    var h = SHA256()
                    h.update(data: [0x01])
                    h.update(data: level[i].bytes)
                    h.update(data: level[i + 1].bytes)
                    next.append(Hash256(unchecked: Array(h.finalize())))
                } else {
                    next.append(level[i])
                }
                i += 2
            }
            level = next
        }
        return level[0]
    }

    static func leafHash(_ leaf: Hash256) -> Hash256 {
        var h = SHA256()
        h.update(data: [0x00])
        h.update(data: leaf.bytes)
        return Hash256(unchecked: Array(h.finalize()))
    }

    static func nodeHash(_ a: Hash256, _ b: Hash256) -> Hash256 {
        var h = SHA256()
        h.update(data: [0x01])
        h.update(data: a.bytes)
        h.update(data: b.bytes)
        return Hash256(unchecked: Array(h.finalize()))
    }

    /// The siblings on the way from leaf `index` to the root of `leaves`, lowest
    /// first; a level where the leaf's node is promoted unpaired adds none.
    public static func path(_ leaves: [Hash256], index: Int) -> [Hash256] {
        guard index >= 0, index < leaves.count else { return [] }
        var level = leaves.map(leafHash)
        var i = index
        var out: [Hash256] = []
        while level.count > 1 {
            let sibling = i ^ 1
            if sibling < level.count { out.append(level[sibling]) }
            var next = [Hash256]()
            next.reserveCapacity((level.count + 1) / 2)
            var k = 0
            while k < level.count {
                next.append(k + 1 < level.count ? nodeHash(level[k], level[k + 1]) : level[k])
                k += 2
            }
            level = next
            i /= 2
        }
        return out
    }

    /// Whether `leaf` is leaf `index` of `count` under `root`, by `path` (as `path(_:index:)` makes it).
    public static func verify(leaf: Hash256, index: UInt64, count: UInt64, path: [Hash256], root: Hash256) -> Bool {
        guard count > 0, index < count else { return false }
        var h = leafHash(leaf)
        var i = index, n = count, k = 0
        while n > 1 {
            if i & 1 == 1 {
                guard k < path.count else { return false }
                h = nodeHash(path[k], h); k += 1
            } else if i + 1 < n {
                guard k < path.count else { return false }
                h = nodeHash(h, path[k]); k += 1
            }
            i /= 2
            n = (n + 1) / 2
        }
        return k == path.count && h == root
    }
}

extension Hash256 {
    /// Hashes the 32 bytes in one call (the synthesized version feeds them one at a time).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
