import PlexusCore
import PlexusLedger
import Testing
@testable import PlexusGateway

/// Routing's order for each sort, its filters and the circuit breaker, over tables of nodes.
@Suite struct RoutingTests {
    static let keys = (0..<6).map { KeyPair.deterministic("node-\($0)").address }

    /// Node i asks `prices[i]` PLX per million input and output tokens.
    static func nodes(_ prices: [Double], privacy: [String]? = nil) -> [NodeRecord] {
        prices.enumerated().map { i, p in
            var offer = Offer(model: "m", priceIn: Amount(units: UInt64(p * 1e9)), priceOut: Amount(units: UInt64(p * 1e9)))
            if let privacy { offer.privacy = privacy[i] }
            return NodeRecord(owner: keys[i], nodeKey: keys[i], endpoint: "http://127.0.0.1:\(9000 + i)", offers: [offer], registeredHeight: 1)
        }
    }

    static func order(_ nodes: [NodeRecord], _ stats: [Address: NodeStats] = [:], reputation: [Address: Double] = [:], sort: String?,
                      now: UInt64 = 1_000, edit: (inout RoutingPolicy) -> Void = { _ in }) -> [Int] {
        var policy = RoutingPolicy()
        policy.sort = sort
        edit(&policy)
        return Routing.plan(nodes: nodes, stats: stats, reputation: reputation, model: "m", policy: policy, now: now).map { c in keys.firstIndex(of: c.node.nodeKey) ?? -1 }
    }

    static func stats(ttft: Double = 0, tps: Double = 0, ok: Double = 0, failed: Double = 0, inFlight: Int = 0) -> NodeStats {
        var s = NodeStats()
        s.ttftMillis = ttft
        s.tokensPerSecond = tps
        s.successes = ok
        s.failures = failed
        s.inFlight = inFlight
        return s
    }

    @Test func eachSortOrdersByItsMeasure() {
        let n = Self.nodes([0.3, 0.1, 0.2])
        let k = Self.keys
        #expect(Self.order(n, sort: "price") == [1, 2, 0])
        let timed = [k[0]: Self.stats(ttft: 10, tps: 50), k[1]: Self.stats(ttft: 90, tps: 300), k[2]: Self.stats(ttft: 40, tps: 100)]
        #expect(Self.order(n, timed, sort: "latency") == [0, 2, 1])
        #expect(Self.order(n, timed, sort: "throughput") == [1, 2, 0])
        let reliable = [k[0]: Self.stats(ok: 9, failed: 1), k[1]: Self.stats(ok: 5, failed: 5), k[2]: Self.stats(ok: 10)]
        #expect(Self.order(n, reliable, sort: "reputation") == [2, 0, 1])  // equal standing: the live success rate decides
        // The ledger's reputation first, the live success rate second.
        #expect(Self.order(n, reliable, reputation: [k[1]: 0.9, k[2]: 0.2], sort: "reputation") == [1, 0, 2])
        #expect(Self.order(Self.nodes([0.1, 0.1, 0.1]), reputation: [k[2]: 0.9, k[0]: 0.1], sort: "balanced") == [2, 1, 0])
        // Balanced: price relative to the cheapest, latency and load, over reliability.
        #expect(Self.order(n, sort: "balanced") == [1, 2, 0])
        #expect(Self.order(n, sort: nil) == [1, 2, 0])
        #expect(Self.order(n, [k[1]: Self.stats(inFlight: 12)], sort: nil) == [2, 0, 1])
    }

    @Test func loadBreaksEqualPricesAndKeysBreakTheRest() {
        let n = Self.nodes([0.1, 0.1, 0.1])
        #expect(Self.order(n, sort: "price") == [0, 1, 2].sorted { Self.keys[$0] < Self.keys[$1] })
        #expect(Self.order(n, [Self.keys[0]: Self.stats(inFlight: 2)], sort: "price").last == 0)
    }

    @Test func thePolicyFilters() {
        let n = Self.nodes([0.3, 0.1, 0.2], privacy: ["public", "trusted", "public"])
        let k = Self.keys
        #expect(Self.order(n, sort: "price") { $0.maxPrice = 0.45 } == [1, 2])
        #expect(Self.order(n, sort: "price") { $0.privacy = "trusted" } == [1])
        #expect(Self.order(n, sort: "price") { $0.allow = [k[0].text, k[2].text] } == [2, 0])
        #expect(Self.order(n, sort: "price") { $0.deny = [k[1].text] } == [2, 0])
        // min_reputation reads the ledger's reputation (neutral 0.5 when unknown), not the live success rate.
        #expect(Self.order(n, [k[1]: Self.stats(ok: 1, failed: 3)], sort: "price") { $0.minReputation = 0.5 } == [1, 2, 0])
        #expect(Self.order(n, reputation: [k[1]: 0.3, k[0]: 0.8], sort: "price") { $0.minReputation = 0.5 } == [2, 0])
        #expect(Routing.plan(nodes: n, stats: [:], model: "other", policy: RoutingPolicy(), now: 0).isEmpty)
        // "verify": "exact" keeps the nodes whose answers re-execute bit for bit.
        var exact = RoutingPolicy()
        exact.verify = "exact"
        #expect(Routing.plan(nodes: n, stats: [:], exact: [k[2]], model: "m", policy: exact, now: 0).map(\.node.nodeKey) == [k[2]])
        #expect(Routing.plan(nodes: n, stats: [:], model: "m", policy: exact, now: 0).isEmpty)
        exact.verify = "tee"
        #expect(throws: PlexusError.self) { try exact.validate() }
    }

    /// What the network's gateways measured of a node (from the ledger): `answered` of `attempts`,
    /// each answer's first token after `ttft` ms at `tps` tokens per second.
    static func measured(attempts: UInt32, answered: UInt32, ttft: Double, tps: Double) -> ServiceView {
        var s = ServiceSample(node: keys[0], model: "m", attempts: attempts, answered: answered)
        s.ttft[ServiceHistogram.bucket(ttft, first: ServiceHistogram.ttftFirstEdge)] = answered
        s.throughput[ServiceHistogram.bucket(tps, first: ServiceHistogram.throughputFirstEdge)] = answered
        var r = ServiceRecord()
        r.add(s, at: 1_000)
        return ServiceView(r, now: 1_000)
    }

    @Test func measuredServiceFiltersByUptimeAndStandsInForOwnFigures() {
        let n = Self.nodes([0.1, 0.1, 0.1])
        let k = Self.keys
        let measured = [k[0]: Self.measured(attempts: 100, answered: 90, ttft: 900, tps: 10),
                        k[1]: Self.measured(attempts: 100, answered: 100, ttft: 40, tps: 200)]
        func plan(_ sort: String, _ stats: [Address: NodeStats] = [:], edit: (inout RoutingPolicy) -> Void = { _ in }) -> [Int] {
            var p = RoutingPolicy()
            p.sort = sort
            edit(&p)
            return Routing.plan(nodes: n, stats: stats, measured: measured, model: "m", policy: p, now: 1_000).map { c in k.firstIndex(of: c.node.nodeKey) ?? -1 }
        }
        // min_uptime: the day's measured uptime; a node never measured does not qualify.
        #expect(plan("price") { $0.minUptime = 0.95 } == [1])
        #expect(Set(plan("price") { $0.minUptime = 0.9 }) == [0, 1])
        #expect(Set(plan("price") { $0.minUptime = 0 }) == [0, 1])
        #expect(plan("price").count == 3)
        // With no figures of its own, the gateway takes the network's medians (node 2 unknown: 50 ms and 100 tok/s guessed).
        #expect(plan("latency") == [1, 2, 0])
        #expect(plan("throughput") == [1, 2, 0])
        // Its own figures, once it has them, come first.
        #expect(plan("latency", [k[0]: Self.stats(ttft: 5, ok: 1)]) == [0, 1, 2])
        var bad = RoutingPolicy()
        bad.minUptime = 1.5
        #expect(throws: PlexusError.self) { try bad.validate() }
    }

    @Test func theMeterCountsAttemptsAnswersAndBuckets() {
        let meter = ServiceMeter()
        let a = Self.keys[0], b = Self.keys[1]
        meter.record(node: a, model: "m", answered: true, ttftMillis: 100, tokensPerSecond: 40)
        meter.record(node: a, model: "m", answered: true, ttftMillis: 100)
        meter.record(node: a, model: "m", answered: false)
        meter.record(node: b, model: "m", answered: true)
        let drained = meter.drain()
        #expect(drained.map(\.node) == [a, b].sorted())
        let s = try? #require(drained.first { $0.node == a })
        #expect(s?.attempts == 3 && s?.answered == 2)
        #expect(s?.ttft[ServiceHistogram.bucket(100, first: ServiceHistogram.ttftFirstEdge)] == 2 && s?.ttft.reduce(0, +) == 2)
        #expect(s?.throughput.reduce(0, +) == 1)
        #expect(meter.drain().isEmpty)
    }

    @Test func threeFailuresInARowOpenTheBreakerForAWhile() {
        let n = Self.nodes([0.1, 0.2])
        var s = NodeStats()
        for _ in 0..<2 { s.begin(); s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: 1_000) }
        #expect(s.openUntilMillis == 0)
        #expect(Self.order(n, [Self.keys[0]: s], sort: "price") == [0, 1])
        s.begin(); s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: 1_000)
        #expect(s.openUntilMillis == 2_000 && s.inFlight == 0)
        #expect(Self.order(n, [Self.keys[0]: s], sort: "price", now: 1_500) == [1])
        #expect(Self.order(n, [Self.keys[0]: s], sort: "price", now: 2_000) == [0, 1])
        // Half-open: once the time is up one attempt probes the node; the rest wait for its verdict.
        s.begin()
        #expect(s.probing && Self.order(n, [Self.keys[0]: s], sort: "price", now: 2_000) == [1])
        // Each further failure doubles the time, up to a minute.
        s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: 2_000)
        #expect(s.openUntilMillis == 4_000 && !s.probing)
        // Attempts that began before it opened and fail while it is open do not lengthen it.
        for _ in 0..<10 { s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: 3_000) }
        #expect(s.openUntilMillis == 4_000 && s.consecutiveFailures == 4)
        var t: UInt64 = 4_000
        for _ in 0..<10 {
            s.begin()
            s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: t)
            t = s.openUntilMillis
        }
        s.begin()
        s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: t)
        #expect(s.openUntilMillis == t + 60_000)
        // The probe's first piece closes the breaker before its answer ends.
        s.begin()
        s.answered()
        #expect(s.consecutiveFailures == 0 && !s.probing && !s.isOut(now: t + 60_000))
        s.end(ok: true, ttftMillis: 40, tokensPerSecond: 100, now: t + 60_000)
        s = NodeStats()
        for _ in 0..<3 { s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: 70_000) }
        // A success closes the run of failures and moves the averages.
        s.end(ok: true, ttftMillis: 40, tokensPerSecond: 100, now: 80_000)
        #expect(s.consecutiveFailures == 0 && s.ttftMillis == 40 && s.tokensPerSecond == 100)
        s.end(ok: true, ttftMillis: 90, tokensPerSecond: nil, now: 80_000)
        #expect(s.ttftMillis == 50 && s.tokensPerSecond == 100)
        s.begin(); s.abandon()
        #expect(s.inFlight == 0 && s.consecutiveFailures == 0)
    }

    /// A node that refuses for want of a free slot is not failing: it answered, so its breaker
    /// closes; for a moment it is routed after the nodes with room, never left out.
    @Test func aFullNodeGoesLastAndKeepsItsBreakerClosed() {
        let n = Self.nodes([0.1, 0.2])
        var s = NodeStats()
        for _ in 0..<2 { s.begin(); s.end(ok: false, ttftMillis: nil, tokensPerSecond: nil, now: 1_000) }
        s.begin()
        s.busy(now: 1_000)
        #expect(s.consecutiveFailures == 0 && s.openUntilMillis == 0 && s.inFlight == 0)
        #expect(Self.order(n, [Self.keys[0]: s], sort: "price", now: 1_200) == [1, 0])
        #expect(Self.order(n, [Self.keys[0]: s], sort: "price", now: 1_000 + NodeStats.fullMillis) == [0, 1])
        // As full when this gateway alone fills every slot the node offers.
        var loaded = NodeStats()
        for _ in 0..<Int(n[0].offers[0].concurrency) { loaded.begin() }
        #expect(Self.order(n, [Self.keys[0]: loaded], sort: "price", now: 5_000) == [1, 0])
        loaded.end(ok: true, ttftMillis: 10, tokensPerSecond: nil, now: 5_000)
        #expect(Self.order(n, [Self.keys[0]: loaded], sort: "price", now: 5_000) == [0, 1])
    }

    /// Shard offers form pipelines covering the layers: after whole-model nodes unless the
    /// policy says "only" (or never with "never"); fewest hops first, or cheapest by price;
    /// each span lists its replacements; a broken shard is left out.
    @Test func shardOffersFormPipelinesAfterWholeNodes() throws {
        let keys = (0..<8).map { KeyPair.deterministic("shard-\($0)").address }
        func shard(_ i: Int, _ a: UInt32, _ b: UInt32, price: Double) -> NodeRecord {
            let offer = Offer(model: "m", priceIn: Amount(units: UInt64(price * 1e9)), priceOut: Amount(units: UInt64(price * 1e9)),
                              layers: LayerSpan(start: a, end: b, total: 30))
            return NodeRecord(owner: keys[i], nodeKey: keys[i], endpoint: "http://127.0.0.1:\(9100 + i)", offers: [offer], registeredHeight: 1)
        }
        // 0-15 twice, 15-30, and a three-hop cover 0-10, 10-20, 20-30 that is cheaper.
        let shards = [shard(0, 0, 15, price: 0.2), shard(1, 0, 15, price: 0.3), shard(2, 15, 30, price: 0.2),
                      shard(3, 0, 10, price: 0.05), shard(4, 10, 20, price: 0.05), shard(5, 20, 30, price: 0.05),
                      shard(6, 5, 30, price: 0.01)]  // starts mid-model: covers nothing from 0
        let whole = Self.nodes([0.5])
        func plan(_ edit: (inout RoutingPolicy) -> Void, stats: [Address: NodeStats] = [:]) -> [Candidate] {
            var policy = RoutingPolicy()
            edit(&policy)
            return Routing.plan(nodes: whole + shards, stats: stats, model: "m", policy: policy, now: 1_000)
        }
        let allow = plan { _ in }
        #expect(allow.first?.isPipeline == false && allow.first?.node.nodeKey == Self.keys[0])
        let pipelines = allow.filter(\.isPipeline)
        #expect(pipelines.count == 2)
        // Fewest hops first: 0-15 (its two shards, cheaper first) then 15-30.
        #expect(pipelines[0].stages!.map { $0.map(\.node.nodeKey) } == [[keys[0], keys[1]], [keys[2]]])
        #expect(pipelines[0].node.nodeKey == keys[2] && pipelines[0].offer.priceIn == Amount(units: UInt64(0.4 * 1e9)))
        #expect(pipelines[1].stages!.count == 3)
        // By price, the cheaper three-hop chain first.
        let byPrice = plan { $0.sort = "price"; $0.shards = "only" }
        #expect(byPrice.allSatisfy(\.isPipeline) && byPrice.first?.stages?.count == 3)
        #expect(plan { $0.shards = "never" }.allSatisfy { !$0.isPipeline })
        #expect(plan { $0.shards = "only"; $0.maxPrice = 0.3 }.map { $0.stages!.count } == [3])
        // The only shard of 15-30 broken: the two-hop chain is gone.
        var broken = NodeStats()
        broken.openUntilMillis = 2_000
        #expect(plan({ $0.shards = "only" }, stats: [keys[2]: broken]).map { $0.stages!.count } == [3])
        var bad = RoutingPolicy()
        bad.shards = "sometimes"
        #expect(throws: PlexusError.self) { try bad.validate() }
    }
}
