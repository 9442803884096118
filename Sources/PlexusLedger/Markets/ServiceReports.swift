import Foundation
import PlexusCore

/// How nodes serve, as the network measured it rather than as operators say: gateways count
/// the attempts they send each node (requests and health probes) and the answers, sort each
/// answer's time to first token and decode throughput into fixed histograms, and record them on
/// the ledger (`report_service`); verifiers report their health probes too. The ledger adds them
/// up per node and model in minute slots (for the 5- and 30-minute windows) and half-hour slots
/// (for the day), so that uptime and percentiles over the three windows are the same on every
/// replica and anyone can read them.
public enum ServiceHistogram {
    /// Buckets per histogram: each edge is √2 times the one before; the last bucket is open.
    public static let buckets = 24

    /// The upper edge of bucket `i` (`i < buckets - 1`) of a histogram starting at `first`.
    static func edge(_ i: Int, first: Double) -> Double {
        first * Double(1 << (i / 2)) * (i % 2 == 0 ? 1 : 2.0.squareRoot())
    }

    /// Time to first token, in milliseconds: edges from 10 ms to 20.5 s.
    public static let ttftFirstEdge = 10.0
    /// Decode throughput, in tokens per second: edges from 0.5 to 1,024.
    public static let throughputFirstEdge = 0.5

    /// The bucket of `value` (the first whose upper edge is at least it).
    public static func bucket(_ value: Double, first: Double) -> Int {
        guard value.isFinite, value > first else { return 0 }
        for i in 0..<(buckets - 1) where value <= edge(i, first: first) { return i }
        return buckets - 1
    }

    /// The `q` quantile (0 < q ≤ 1) of `counts`: the upper edge of the bucket it falls in (the
    /// last edge for the open bucket); nil with no samples. The true value is at most that edge
    /// and, but in the first bucket, above the edge before it (a factor of √2 below).
    public static func quantile(_ q: Double, of counts: [UInt64], first: Double) -> Double? {
        let total = counts.reduce(0, &+)
        guard total > 0, counts.count == buckets else { return nil }
        let rank = Swift.max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() {
            seen &+= c
            if seen >= rank { return edge(Swift.min(i, buckets - 2), first: first) }
        }
        return edge(buckets - 2, first: first)
    }
}

/// What one gateway measured of one node serving one model since its last report.
public struct ServiceSample: Sendable, Hashable, Codable, CanonicalCodable {
    /// The node's key (as in its offers and receipts).
    public var node: Address
    public var model: String
    /// Requests sent and health probes made; of those, the ones the node answered.
    public var attempts: UInt32
    public var answered: UInt32
    /// `ServiceHistogram.buckets` counts each, of answered requests only.
    public var ttft: [UInt32]
    public var throughput: [UInt32]

    /// A report's samples at most.
    public static let maxPerReport = 64
    /// A sample's attempts at most (a gateway reports every few seconds).
    public static let maxAttempts: UInt32 = 1_000_000

    public init(node: Address, model: String, attempts: UInt32 = 0, answered: UInt32 = 0,
                ttft: [UInt32] = Array(repeating: 0, count: ServiceHistogram.buckets),
                throughput: [UInt32] = Array(repeating: 0, count: ServiceHistogram.buckets)) {
        self.node = node
        self.model = model
        self.attempts = attempts
        self.answered = answered
        self.ttft = ttft
        self.throughput = throughput
    }

    /// Whether the figures hang together: something attempted, no more answers than attempts,
    /// whole histograms that hold no more than the answers.
    func check() throws {
        guard !model.isEmpty, model.utf8.count <= Registry.maxName else { throw PlexusError(.malformed, "a model id is 1...\(Registry.maxName) bytes") }
        guard (1...Self.maxAttempts).contains(attempts), answered <= attempts else {
            throw PlexusError(.outOfRange, "a sample has 1...\(Self.maxAttempts) attempts and no more answers than attempts")
        }
        guard ttft.count == ServiceHistogram.buckets, throughput.count == ServiceHistogram.buckets else {
            throw PlexusError(.malformed, "a histogram has \(ServiceHistogram.buckets) buckets")
        }
        for h in [ttft, throughput] where h.reduce(UInt64(0), { $0 + UInt64($1) }) > UInt64(answered) {
            throw PlexusError(.outOfRange, "a histogram holds more answers than the sample's \(answered)")
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(node); w.write(model); w.write(attempts); w.write(answered)
        w.write(UInt32(ttft.count)); for c in ttft { w.write(c) }
        w.write(UInt32(throughput.count)); for c in throughput { w.write(c) }
    }

    public init(from r: inout CanonicalReader) throws {
        node = try r.readAddress()
        model = try r.readString(limit: Registry.maxName)
        attempts = try r.readUInt32()
        answered = try r.readUInt32()
        func histogram() throws -> [UInt32] {
            guard Int(try r.readUInt32()) == ServiceHistogram.buckets else {
                throw PlexusError(.malformed, "a histogram has \(ServiceHistogram.buckets) buckets")
            }
            return try (0..<ServiceHistogram.buckets).map { _ in try r.readUInt32() }
        }
        ttft = try histogram()
        throughput = try histogram()
    }
}

/// The measured service of one node for one model: sums of samples by minute (the last 30)
/// and by half hour (the last 48).
public struct ServiceRecord: Sendable, Hashable, CanonicalCodable {
    public struct Totals: Sendable, Hashable {
        public var attempts: UInt64 = 0
        public var answered: UInt64 = 0
        public var ttft = [UInt64](repeating: 0, count: ServiceHistogram.buckets)
        public var throughput = [UInt64](repeating: 0, count: ServiceHistogram.buckets)
        /// Reports that added to it.
        public var reports: UInt64 = 0

        public init() {}

        mutating func add(_ s: ServiceSample) {
            attempts &+= UInt64(s.attempts)
            answered &+= UInt64(s.answered)
            for i in 0..<ServiceHistogram.buckets {
                ttft[i] &+= UInt64(s.ttft[i])
                throughput[i] &+= UInt64(s.throughput[i])
            }
            reports &+= 1
        }

        mutating func add(_ t: Totals) {
            attempts &+= t.attempts
            answered &+= t.answered
            for i in 0..<ServiceHistogram.buckets {
                ttft[i] &+= t.ttft[i]
                throughput[i] &+= t.throughput[i]
            }
            reports &+= t.reports
        }
    }

    public struct Slot: Sendable, Hashable {
        /// Minutes (or half hours) since the Unix epoch.
        public var index: UInt64
        public var totals: Totals
    }

    public static let minuteMillis: UInt64 = 60_000
    public static let halfHourMillis: UInt64 = 1_800_000
    static let keptMinutes: UInt64 = 30
    static let keptHalfHours: UInt64 = 48

    public var minutes: [Slot] = []
    public var halfHours: [Slot] = []

    public init() {}

    /// Adds `s`, measured up to `timeMillis`, and drops the slots no window reaches any more.
    public mutating func add(_ s: ServiceSample, at timeMillis: UInt64) {
        func put(_ slots: inout [Slot], _ index: UInt64, kept: UInt64) {
            if slots.last?.index == index { slots[slots.count - 1].totals.add(s) } else {
                var t = Totals()
                t.add(s)
                slots.append(Slot(index: index, totals: t))
            }
            slots.removeAll { $0.index &+ kept <= index }
        }
        put(&minutes, timeMillis / Self.minuteMillis, kept: Self.keptMinutes)
        put(&halfHours, timeMillis / Self.halfHourMillis, kept: Self.keptHalfHours)
    }

    /// The windows a caller compares.
    public enum Window: String, Sendable, CaseIterable {
        case fiveMinutes = "5m", thirtyMinutes = "30m", day = "1d"
    }

    /// The sums over `window` ending at `nowMillis` (the current, partial slot included).
    public func totals(_ window: Window, now nowMillis: UInt64) -> Totals {
        let (slots, span, size): ([Slot], UInt64, UInt64) = switch window {
        case .fiveMinutes: (minutes, 5, Self.minuteMillis)
        case .thirtyMinutes: (minutes, Self.keptMinutes, Self.minuteMillis)
        case .day: (halfHours, Self.keptHalfHours, Self.halfHourMillis)
        }
        let current = nowMillis / size
        var t = Totals()
        for s in slots where s.index <= current && s.index &+ span > current { t.add(s.totals) }
        return t
    }

    public func encode(to w: inout CanonicalWriter) {
        for slots in [minutes, halfHours] {
            w.write(UInt32(slots.count))
            for s in slots {
                w.write(s.index); w.write(s.totals.attempts); w.write(s.totals.answered); w.write(s.totals.reports)
                for c in s.totals.ttft { w.write(c) }
                for c in s.totals.throughput { w.write(c) }
            }
        }
    }

    public init(from r: inout CanonicalReader) throws {
        func slots(limit: UInt64) throws -> [Slot] {
            let n = Int(try r.readUInt32())
            guard n <= Int(limit) else { throw PlexusError(.tooLarge, "a service record keeps at most \(limit) slots") }
            return try (0..<n).map { _ in
                var t = Totals()
                let index = try r.readUInt64()
                t.attempts = try r.readUInt64()
                t.answered = try r.readUInt64()
                t.reports = try r.readUInt64()
                t.ttft = try (0..<ServiceHistogram.buckets).map { _ in try r.readUInt64() }
                t.throughput = try (0..<ServiceHistogram.buckets).map { _ in try r.readUInt64() }
                return Slot(index: index, totals: t)
            }
        }
        minutes = try slots(limit: Self.keptMinutes)
        halfHours = try slots(limit: Self.keptHalfHours)
    }
}

/// A node and model whose service is measured.
public struct ServiceKey: Sendable, Hashable, Comparable {
    public var node: Address
    public var model: String
    public init(node: Address, model: String) {
        self.node = node
        self.model = model
    }
    public static func < (a: ServiceKey, b: ServiceKey) -> Bool { a.node != b.node ? a.node < b.node : a.model < b.model }
}

extension LedgerState {
    /// Checks a `report_service` from `from` and returns the records with it added, changing
    /// nothing: `from` is a registered gateway key or a registered verifier that is not jailed;
    /// 1...64 samples, one per node and model, each for a registered node key that offers the
    /// model and is not run by the reporter's own operator (the gateway's owner, the verifier
    /// itself): what an operator measures of its own node is what it says of it.
    func planServiceReport(_ samples: [ServiceSample], from: Address) throws -> [ServiceKey: ServiceRecord] {
        let operatorAccount: Address
        if let gateway = gateways[from] {
            operatorAccount = gateway.owner
        } else if verifiers[from] != nil, !standing(from).isJailed(at: height) {
            operatorAccount = from
        } else {
            throw PlexusError(.badSignature, "\(from.short) is neither a registered gateway key nor a verifier in good standing")
        }
        guard (1...ServiceSample.maxPerReport).contains(samples.count) else {
            throw PlexusError(.outOfRange, "a report has 1...\(ServiceSample.maxPerReport) samples")
        }
        var out: [ServiceKey: ServiceRecord] = [:]
        for s in samples {
            try s.check()
            let key = ServiceKey(node: s.node, model: s.model)
            guard out[key] == nil else { throw PlexusError(.malformed, "node \(s.node.short) and model '\(s.model.prefix(64))' are reported twice") }
            guard let owner = nodeOwners[s.node], let node = nodes[owner] else {
                throw PlexusError(.notFound, "\(s.node.short) is not a registered node key")
            }
            guard node.offers.contains(where: { $0.model == s.model }) else {
                throw PlexusError(.notFound, "node \(s.node.short) offers no '\(s.model.prefix(64))'")
            }
            guard owner != operatorAccount else {
                throw PlexusError(.invalidState, "\(from.short) does not report on its own operator's node \(s.node.short)")
            }
            var record = service[key] ?? ServiceRecord()
            record.add(s, at: timeMillis)
            out[key] = record
        }
        return out
    }
}

/// A node's measured service for a model over the three windows, as callers compare it.
public struct ServiceView: Sendable, Codable, Hashable {
    public struct Percentiles: Sendable, Codable, Hashable {
        public var p50: Double
        public var p90: Double
        public var p99: Double

        init?(_ counts: [UInt64], first: Double) {
            guard let a = ServiceHistogram.quantile(0.5, of: counts, first: first), let b = ServiceHistogram.quantile(0.9, of: counts, first: first),
                  let c = ServiceHistogram.quantile(0.99, of: counts, first: first) else { return nil }
            (p50, p90, p99) = (a, b, c)
        }
    }

    public struct Window: Sendable, Codable, Hashable {
        /// "5m", "30m" or "1d".
        public var window: String
        public var attempts: UInt64
        public var answered: UInt64
        /// Answered over attempted (nil: nothing attempted in the window).
        public var uptime: Double?
        /// Time to first token in milliseconds, and decode throughput in tokens per second:
        /// each percentile is the upper edge of its histogram bucket (within a factor √2).
        public var ttftMillis: Percentiles?
        public var tokensPerSecond: Percentiles?
        /// The gateways' reports that fell in the window.
        public var reports: UInt64
    }

    public var windows: [Window]

    public init(_ record: ServiceRecord, now: UInt64) {
        windows = ServiceRecord.Window.allCases.map { w in
            let t = record.totals(w, now: now)
            return Window(window: w.rawValue, attempts: t.attempts, answered: t.answered,
                          uptime: t.attempts == 0 ? nil : Double(t.answered) / Double(t.attempts),
                          ttftMillis: Percentiles(t.ttft, first: ServiceHistogram.ttftFirstEdge),
                          tokensPerSecond: Percentiles(t.throughput, first: ServiceHistogram.throughputFirstEdge), reports: t.reports)
        }
    }

    /// The figures of `window`.
    public subscript(_ window: ServiceRecord.Window) -> Window? { windows.first { $0.window == window.rawValue } }
}

extension Array where Element == MarketView {
    /// Every ask's measured service, by node key and model (asks never measured left out).
    public var measuredService: [ServiceKey: ServiceView] {
        var out: [ServiceKey: ServiceView] = [:]
        for v in self { for a in v.asks { out[ServiceKey(node: a.node, model: v.model)] = a.service } }
        return out
    }
}

extension LedgerState {
    /// What gateways measured of `node` serving `model`, over windows ending at the latest block's time.
    public func serviceView(node: Address, model: String) -> ServiceView? {
        service[ServiceKey(node: node, model: model)].map { ServiceView($0, now: timeMillis) }
    }
}

extension ServiceView {
    /// One line: uptime over each window, then the day's latency and throughput percentiles.
    public var summary: String {
        func pct(_ w: Window) -> String { w.uptime.map { String(format: "%.1f%%", $0 * 100) } ?? "–" }
        var parts = ["uptime " + windows.map { "\($0.window) \(pct($0))" }.joined(separator: " ")]
        if let day = self[.day] {
            if let t = day.ttftMillis { parts.append(String(format: "first token p50 ≤%.0f p90 ≤%.0f ms", t.p50, t.p90)) }
            if let r = day.tokensPerSecond { parts.append(String(format: "throughput p50 ≤%.1f tok/s", r.p50)) }
            parts.append("\(day.reports) reports")
        }
        return parts.joined(separator: ", ")
    }
}
