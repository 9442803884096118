import PlexusCore

/// A value's history by block height: `(height, value)` pairs in increasing
/// height, at most one per height (a later write in the same block replaces
/// the earlier). Lookups are binary searches.
public struct Checkpoints: Sendable, Hashable, CanonicalCodable {
    public private(set) var heights: [UInt64] = []
    public private(set) var values: [UInt64] = []

    public init() {}

    /// The value now (0 if never set).
    public var latest: UInt64 { values.last ?? 0 }

    /// Records `value` as of `height` (which must not precede the last entry),
    /// forgetting entries no lookup at or after `floor` can reach: only the
    /// last entry below `floor` is kept of those below it.
    public mutating func push(height: UInt64, value: UInt64, floor: UInt64 = 0) {
        if let last = heights.last, last == height {
            values[values.count - 1] = value
        } else {
            heights.append(height)
            values.append(value)
        }
        var drop = 0
        while drop + 1 < heights.count && heights[drop + 1] < floor { drop += 1 }
        if drop > 0 {
            heights.removeFirst(drop)
            values.removeFirst(drop)
        }
    }

    /// The value as it stood at the end of the last block before `height`:
    /// the last entry written strictly before `height` (0 if none). Voting
    /// power "at the snapshot" uses this, so that what changes in the
    /// snapshot block itself or later carries no weight.
    public func value(before height: UInt64) -> UInt64 {
        var lo = 0, hi = heights.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if heights[mid] < height { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? 0 : values[lo - 1]
    }

    public var isEmpty: Bool { heights.isEmpty }

    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt32(heights.count))
        for i in heights.indices { w.write(heights[i]); w.write(values[i]) }
    }

    public init(from r: inout CanonicalReader) throws {
        let n = Int(try r.readUInt32())
        guard n <= r.remaining / 16 else { throw PlexusError(.truncated, "checkpoint list of \(n) entries does not fit") }
        heights.reserveCapacity(n)
        values.reserveCapacity(n)
        for _ in 0..<n {
            let h = try r.readUInt64(), v = try r.readUInt64()
            if let last = heights.last, h <= last { throw PlexusError(.malformed, "checkpoints out of order") }
            heights.append(h)
            values.append(v)
        }
    }
}
