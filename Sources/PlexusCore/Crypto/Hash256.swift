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
}

extension Hash256 {
    /// Hashes the 32 bytes in one call (the synthesized version feeds them one at a time).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
