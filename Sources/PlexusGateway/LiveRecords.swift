import PlexusCore
import PlexusLedger

/// Unsettled records in arrival order, with the journal segment that holds each
/// (nil: a row of an older store, unsettled in SQLite itself).
struct LiveRecords {
    var records: [Hash256: (record: RequestRecord, segment: UInt64?)] = [:]
    /// Request ids in arrival order from `head` on (an id may appear again after a discard).
    var order: [Hash256] = []
    var head = 0
    var perSegment: [UInt64: Int] = [:]

    /// Adds or replaces a record; returns a segment that no longer holds anything needed.
    mutating func add(_ r: RequestRecord, segment: UInt64?, current: UInt64?) -> UInt64? {
        let old = records.updateValue((r, segment), forKey: r.requestId)
        if old == nil { order.append(r.requestId) }
        if let segment { perSegment[segment, default: 0] += 1 }
        return old.flatMap { release($0.segment, current: current) }
    }

    mutating func remove(_ id: Hash256, current: UInt64?) -> UInt64? {
        guard let x = records.removeValue(forKey: id) else { return nil }
        while head < order.count, records[order[head]] == nil { head += 1 }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        return release(x.segment, current: current)
    }

    /// One record fewer in `segment`: returns it if it now holds nothing needed and is not `current`.
    mutating func release(_ segment: UInt64?, current: UInt64?) -> UInt64? {
        guard let segment else { return nil }
        let left = perSegment[segment, default: 1] - 1
        if left == 0, segment != current {
            perSegment[segment] = nil
            return segment
        }
        perSegment[segment] = left
        return nil
    }
}
