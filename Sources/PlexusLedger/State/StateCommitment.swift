import Crypto
import PlexusCore

/// A 32-byte digest held inline (no heap allocation), for the hot paths of
/// the state commitment.
struct Digest32: Hashable, Comparable, Sendable {
    var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    static let zero = Digest32(w0: 0, w1: 0, w2: 0, w3: 0)

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    init(_ d: SHA256.Digest) {
        var w = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        d.withUnsafeBytes { raw in
            w.0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            w.1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            w.2 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            w.3 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
        self.init(w0: w.0, w1: w.1, w2: w.2, w3: w.3)
    }

    static func hashing(_ bytes: [UInt8]) -> Digest32 { Digest32(SHA256.hash(data: bytes)) }

    func feed(_ h: inout SHA256) {
        var be = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        withUnsafeBytes(of: &be) { h.update(bufferPointer: $0) }
    }

    var hash256: Hash256 {
        var be = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        let bytes = withUnsafeBytes(of: &be) { Array($0) }
        return (try? Hash256(bytes: bytes)) ?? .zero
    }

    static func < (a: Digest32, b: Digest32) -> Bool {
        (a.w0, a.w1, a.w2, a.w3) < (b.w0, b.w1, b.w2, b.w3)
    }
}

/// An incrementally maintained commitment to a key-value state.
///
/// Keys are hashed into 2^16 buckets by the top bits of their key hash; a
/// bucket's leaf is SHA-256 over its entries sorted by key hash, and the
/// leaves form a fixed-depth binary Merkle tree. Updating *k* entries costs
/// *k* bucket rehashes plus the dirty paths to the root, never a full-state
/// hash, and the root does not depend on the order of updates.
/// Empty subtrees hash to zero so that small states stay cheap.
struct StateCommitment: Sendable {
    static let depth = 16
    static let bucketCount = 1 << depth

    struct Entry: Sendable {
        var key: Digest32
        var value: Digest32
    }

    private var buckets: [[Entry]]
    /// Heap layout: node 1 is the root; leaves are at `bucketCount + i`.
    private var nodes: [Digest32]
    private var dirtyBuckets: Set<Int> = []

    init() {
        buckets = Array(repeating: [], count: Self.bucketCount)
        nodes = Array(repeating: .zero, count: 2 * Self.bucketCount)
    }

    /// Number of entries committed to.
    private(set) var count = 0

    /// Sets the value hash for a key hash; `nil` removes the key.
    mutating func update(key: Digest32, value: Digest32?) {
        let b = Int(key.w0 >> UInt64(64 - Self.depth))
        var entries = buckets[b]
        buckets[b] = []
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].key < key { lo = mid + 1 } else { hi = mid }
        }
        let found = lo < entries.count && entries[lo].key == key
        switch (found, value) {
        case (true, let v?): entries[lo].value = v
        case (true, nil): entries.remove(at: lo); count -= 1
        case (false, let v?): entries.insert(Entry(key: key, value: v), at: lo); count += 1
        case (false, nil): break
        }
        buckets[b] = entries
        dirtyBuckets.insert(b)
    }

    /// Recomputes what changed and returns the root.
    mutating func root() -> Hash256 {
        guard !dirtyBuckets.isEmpty else { return nodes[1].hash256 }
        var level = dirtyBuckets.sorted()
        dirtyBuckets.removeAll(keepingCapacity: true)
        for b in level {
            nodes[Self.bucketCount + b] = Self.leafHash(buckets[b])
        }
        level = level.map { Self.bucketCount + $0 }
        while level.first != 1 {
            var parents = [Int]()
            parents.reserveCapacity(level.count)
            for n in level {
                let p = n / 2
                if parents.last != p { parents.append(p) }
            }
            for p in parents {
                let l = nodes[2 * p], r = nodes[2 * p + 1]
                if l == .zero && r == .zero {
                    nodes[p] = .zero
                } else {
                    var h = SHA256()
                    h.update(data: [0x01])
                    l.feed(&h)
                    r.feed(&h)
                    nodes[p] = Digest32(h.finalize())
                }
            }
            level = parents
        }
        return nodes[1].hash256
    }

    private static func leafHash(_ entries: [Entry]) -> Digest32 {
        guard !entries.isEmpty else { return .zero }
        var h = SHA256()
        h.update(data: [0x00])
        for e in entries {
            e.key.feed(&h)
            e.value.feed(&h)
        }
        return Digest32(h.finalize())
    }
}
