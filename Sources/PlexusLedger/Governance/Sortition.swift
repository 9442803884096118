import Crypto
import PlexusCore

/// Drawing by lot: a counter-mode SHA-256 stream from a public seed (the
/// hash of a block produced after the draw was announced), uniform integers
/// by rejection, and draws without replacement by a partial Fisher–Yates
/// shuffle. Pure: the same seed and candidates give the same draw everywhere.
public struct LotStream: Sendable {
    private let seed: [UInt8]
    private var counter: UInt64 = 0
    private var buffer: [UInt64] = []

    public init(seed: [UInt8]) { self.seed = seed }

    /// The seed of a draw: the block hash, what is drawn, and when.
    public static func seed(blockHash: Hash256, purpose: String, height: UInt64) -> [UInt8] {
        var w = CanonicalWriter(capacity: 96)
        w.write(fixed: Array("plexus-lot-v1".utf8))
        w.write(blockHash)
        w.write(purpose)
        w.write(height)
        return Hash256.of(w.bytes).bytes
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        if buffer.isEmpty {
            var h = SHA256()
            h.update(data: seed)
            var c = counter.bigEndian
            withUnsafeBytes(of: &c) { h.update(bufferPointer: $0) }
            counter += 1
            let d = Array(h.finalize())
            for i in stride(from: 24, through: 0, by: -8) {
                var v: UInt64 = 0
                for j in 0..<8 { v = v << 8 | UInt64(d[i + j]) }
                buffer.append(v)
            }
        }
        return buffer.removeLast()
    }

    /// A uniform integer in `0..<n` (n > 0), without modulo bias.
    public mutating func uniform(_ n: UInt64) -> UInt64 {
        precondition(n > 0)
        let limit = UInt64.max - (UInt64.max % n)  // values ≥ limit are rejected
        while true {
            let v = next()
            if v < limit { return v % n }
        }
    }

    /// `k` distinct elements of `from`, each element equally likely.
    public mutating func draw<T>(_ k: Int, from items: [T]) -> [T] {
        var pool = items
        let k = min(k, pool.count)
        for i in 0..<k {
            let j = i + Int(uniform(UInt64(pool.count - i)))
            pool.swapAt(i, j)
        }
        return Array(pool.prefix(k))
    }
}

/// Seat allocation for a federation assembly.
public enum Apportionment {
    /// Seats per community for community sizes `sizes`: each first gets its
    /// floor (at most its size), then the remaining seats go one at a time
    /// to the community with the highest size / (seats + 1) (D'Hondt), ties
    /// to the lower index, never more seats than members. The total is
    /// `max(seats, Σ floors)` or every member, whichever is less.
    public static func seats(sizes: [Int], total: Int, floor: Int) -> [Int] {
        var seats = sizes.map { min($0, floor) }
        var assigned = seats.reduce(0, +)
        let capacity = sizes.reduce(0, +)
        while assigned < min(total, capacity) {
            var best = -1
            for i in sizes.indices where seats[i] < sizes[i] {
                // Compare sizes[i]/(seats[i]+1) with best's without division.
                if best < 0 || sizes[i] * (seats[best] + 1) > sizes[best] * (seats[i] + 1) { best = i }
            }
            seats[best] += 1
            assigned += 1
        }
        return seats
    }
}
