import Foundation

/// The time series behind the explorer's history charts: the network's figures sampled every
/// period, and each node's (stake, price, latency, throughput, requests served) whenever they
/// change. Kept for `keepMillis` (a week by default), at most `maxPoints` a series; with a file,
/// every sample is appended to it as a JSON line and read back on start, so history reaches back
/// across restarts. Pure apart from the file: samples in, series and changes out.
public struct History: Sendable {
    public struct Point: Sendable, Hashable {
        public var timeMillis: UInt64
        public var value: Double
    }

    /// One sample as a file line: its time and the values that changed.
    struct Line: Codable {
        var t: UInt64
        var v: [String: Double]
    }

    public let keepMillis: UInt64
    public let maxPoints: Int
    private(set) var series: [String: [Point]] = [:]
    /// The time of the latest sample.
    public private(set) var latest: UInt64 = 0
    /// Lines appended since the file was last written whole.
    private var appended = 0

    public init(keepMillis: UInt64 = 7 * 86_400_000, maxPoints: Int = 20_160) {
        self.keepMillis = keepMillis
        self.maxPoints = maxPoints
    }

    /// Takes a sample at `timeMillis` and returns the values it kept: every value of a key in
    /// `always`'s set, the others only when they differ from the series' last point.
    @discardableResult
    public mutating func record(at timeMillis: UInt64, _ values: [String: Double], always: (String) -> Bool = { _ in true }) -> [String: Double] {
        var kept: [String: Double] = [:]
        latest = max(latest, timeMillis)
        for (key, v) in values where v.isFinite {
            var list = series[key, default: []]
            if let last = list.last {
                guard timeMillis >= last.timeMillis else { continue }
                if !always(key), last.value == v { continue }
            }
            list.append(Point(timeMillis: timeMillis, value: v))
            series[key] = list
            kept[key] = v
        }
        trim(now: timeMillis)
        return kept
    }

    private mutating func trim(now: UInt64) {
        let floor = now > keepMillis ? now - keepMillis : 0
        for (key, list) in series {
            // The last point before the window stays: a series that changes rarely still has a value over it.
            var drop = list.firstIndex { $0.timeMillis >= floor }.map { list[$0].timeMillis == floor ? $0 : max(0, $0 - 1) } ?? max(0, list.count - 1)
            drop = max(drop, list.count - maxPoints)
            if drop > 0 { series[key] = Array(list.dropFirst(drop)) }
        }
    }

    /// The points of `key` from `since` on (with the last one before it, so a step series starts at its value then).
    public func points(_ key: String, since: UInt64 = 0) -> [Point] {
        guard let list = series[key] else { return [] }
        guard let i = list.firstIndex(where: { $0.timeMillis >= since }) else { return list.last.map { [$0] } ?? [] }
        return Array(list[max(0, i - 1)...])
    }

    /// The value of `key` at `timeMillis` (its last point at or before it).
    public func value(_ key: String, at timeMillis: UInt64) -> Double? {
        series[key]?.last { $0.timeMillis <= timeMillis }?.value
    }

    /// The first and last points of `key`, and how many it has.
    public func span(_ key: String) -> (first: Point, last: Point, count: Int)? {
        guard let list = series[key], let first = list.first, let last = list.last else { return nil }
        return (first, last, list.count)
    }

    /// How `key` changed over `millis` up to its last point: the difference, the time it is
    /// measured from (later than asked when the history starts later) and the last point's time.
    public func change(_ key: String, over millis: UInt64) -> (delta: Double, from: UInt64, to: UInt64)? {
        guard let (first, last, _) = span(key), first.timeMillis < last.timeMillis else { return nil }
        let from = last.timeMillis > millis ? last.timeMillis - millis : 0
        if let then = value(key, at: from) { return (last.value - then, from, last.timeMillis) }
        return (last.value - first.value, first.timeMillis, last.timeMillis)
    }

    /// Every key with a series.
    public var keys: [String] { series.keys.sorted() }

    // MARK: The file

    /// Reads the samples in `path` (missing: none; a line that does not parse, such as the last
    /// of a file cut short by a crash, is skipped).
    public mutating func load(_ path: String) {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let decoder = JSONDecoder()
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let l = try? decoder.decode(Line.self, from: Data(line)) else { continue }
            latest = max(latest, l.t)
            for (key, v) in l.v where v.isFinite {
                var list = series[key, default: []]
                guard list.last.map({ l.t >= $0.timeMillis }) ?? true else { continue }
                list.append(Point(timeMillis: l.t, value: v))
                series[key] = list
            }
        }
        trim(now: latest)
    }

    /// Appends one sample's kept values to `path`; every `rewriteEvery` lines the file is written
    /// whole from what is kept instead (so it does not grow past the window).
    public mutating func append(at timeMillis: UInt64, _ kept: [String: Double], to path: String, rewriteEvery: Int = 1_000) throws {
        appended += 1
        if appended >= rewriteEvery {
            appended = 0
            try rewrite(path)
            return
        }
        guard !kept.isEmpty else { return }
        var line = try JSONEncoder().encode(Line(t: timeMillis, v: kept))
        line.append(UInt8(ascii: "\n"))
        if let h = FileHandle(forWritingAtPath: path) {
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: line)
        } else {
            try line.write(to: URL(fileURLWithPath: path))
        }
    }

    /// Writes every kept point to `path` (through a temporary file, renamed over it).
    public func rewrite(_ path: String) throws {
        var byTime: [UInt64: [String: Double]] = [:]
        for (key, list) in series {
            for p in list { byTime[p.timeMillis, default: [:]][key] = p.value }
        }
        let encoder = JSONEncoder()
        var out = Data()
        for t in byTime.keys.sorted() {
            out.append(try encoder.encode(Line(t: t, v: byTime[t]!)))
            out.append(UInt8(ascii: "\n"))
        }
        let tmp = path + ".tmp"
        try out.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
