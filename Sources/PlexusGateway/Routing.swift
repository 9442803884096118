import Foundation
import PlexusCore
import PlexusLedger

/// A request's routing policy: the `plexus` object of the body, over gateway defaults.
public struct RoutingPolicy: Codable, Sendable {
    /// price, latency, throughput, reputation or balanced.
    public var sort: String?
    /// Most PLX per million tokens (input + output prices) a node may ask.
    public var maxPrice: Double?
    public var minReputation: Double?
    public var privacy: String?
    /// Node keys (addresses) to use only / never.
    public var allow: [String]?
    public var deny: [String]?
    public var timeoutMs: Int?
    /// "exact": only nodes whose answers a verifier can re-execute bit for bit.
    public var verify: String?
    /// 1...3: run the request on this many nodes of distinct operators and compare (each is paid).
    public var redundancy: Int?
    /// Pipelines of shard nodes (each serving layers of the model): "allow" (after whole-model
    /// nodes, the default), "never" or "only".
    public var shards: String?
    /// The least measured quality (0...1: the best score among the model's recorded evaluations) the model must have.
    public var minQuality: Double?
    /// Uses the model's licence must allow: "commercial", "non-commercial", "academic".
    public var license: [String]?
    /// The least uptime (0...1) a node must have shown over the last day, as the network's
    /// gateways measured it on the ledger; a node never measured does not qualify.
    public var minUptime: Double?

    enum CodingKeys: String, CodingKey {
        case sort, privacy, allow, deny, verify, redundancy, shards, license
        case minQuality = "min_quality"
        case minUptime = "min_uptime"
        case maxPrice = "max_price"
        case minReputation = "min_reputation"
        case timeoutMs = "timeout_ms"
    }

    public init() {}

    static let sorts: Set<String> = ["price", "latency", "throughput", "reputation", "balanced"]

    /// This policy (the gateway's defaults) with what a request's `plexus` object sets.
    func merged(with p: RoutingPolicy) -> RoutingPolicy {
        var policy = self
        policy.sort = p.sort ?? policy.sort
        policy.maxPrice = p.maxPrice ?? policy.maxPrice
        policy.minReputation = p.minReputation ?? policy.minReputation
        policy.privacy = p.privacy ?? policy.privacy
        policy.allow = p.allow ?? policy.allow
        policy.deny = p.deny ?? policy.deny
        policy.timeoutMs = p.timeoutMs ?? policy.timeoutMs
        policy.verify = p.verify ?? policy.verify
        policy.redundancy = p.redundancy ?? policy.redundancy
        policy.shards = p.shards ?? policy.shards
        policy.minQuality = p.minQuality ?? policy.minQuality
        policy.license = p.license ?? policy.license
        policy.minUptime = p.minUptime ?? policy.minUptime
        return policy
    }

    func validate() throws {
        if let sort, !Self.sorts.contains(sort) { throw PlexusError(.outOfRange, "plexus.sort must be one of \(Self.sorts.sorted().joined(separator: ", "))") }
        if let maxPrice, !(maxPrice >= 0 && maxPrice.isFinite) { throw PlexusError(.outOfRange, "plexus.max_price must be a non-negative number") }
        if let minReputation, !(0...1).contains(minReputation) { throw PlexusError(.outOfRange, "plexus.min_reputation must be 0...1") }
        if let timeoutMs, !(1...600_000).contains(timeoutMs) { throw PlexusError(.outOfRange, "plexus.timeout_ms must be 1...600000") }
        if let redundancy, !(1...3).contains(redundancy) { throw PlexusError(.outOfRange, "plexus.redundancy must be 1...3") }
        if let shards, !["allow", "never", "only"].contains(shards) { throw PlexusError(.outOfRange, "plexus.shards must be \"allow\", \"never\" or \"only\"") }
        if let verify, verify != "exact" { throw PlexusError(.outOfRange, "plexus.verify must be \"exact\"") }
        if let minQuality, !(0...1).contains(minQuality) { throw PlexusError(.outOfRange, "plexus.min_quality must be 0...1") }
        if let minUptime, !(0...1).contains(minUptime) { throw PlexusError(.outOfRange, "plexus.min_uptime must be 0...1") }
        if let license, license.isEmpty || license.contains(where: { Licenses.Use(rawValue: $0) == nil }) {
            throw PlexusError(.outOfRange, "plexus.license lists uses: \(Licenses.Use.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if (allow?.count ?? 0) > 64 || (deny?.count ?? 0) > 64 { throw PlexusError(.tooLarge, "plexus.allow and plexus.deny list at most 64 nodes") }
    }
}

/// Live statistics of one node, and its circuit breaker.
struct NodeStats: Sendable {
    var ttftMillis = 0.0  // moving average; 0 = unknown
    var tokensPerSecond = 0.0
    var successes = 0.0, failures = 0.0  // decayed counts
    var inFlight = 0
    var consecutiveFailures = 0
    var openUntilMillis: UInt64 = 0
    /// Until when the node is taken as full, since it refused for want of a free slot.
    var fullUntilMillis: UInt64 = 0
    /// Whether the one attempt allowed through a breaker that has just closed again is in
    /// flight (half-open: the others wait for its verdict rather than all failing at once).
    var probing = false

    /// Whether the breaker keeps the node out of routing at `now`: open, or half-open with its probe in flight.
    func isOut(now: UInt64) -> Bool { openUntilMillis > now || (probing && consecutiveFailures >= 3) }

    var successRate: Double { successes + failures == 0 ? 1 : successes / (successes + failures) }

    /// An attempt began; after a run of failures it is the probe of the half-open breaker.
    mutating func begin() {
        inFlight += 1
        if consecutiveFailures >= 3 { probing = true }
    }

    /// An attempt ended without a verdict on the node (the client left): only the load changes.
    mutating func abandon() {
        inFlight = max(0, inFlight - 1)
        probing = false
    }

    /// The attempt's first piece came: the node is up, so a run of failures ends here.
    mutating func answered() {
        probing = false
        consecutiveFailures = 0
    }

    /// The node refused for want of a free slot. A busy node is not a failing one: it answered,
    /// so the breaker closes; it only counts as full for the next 500 ms.
    mutating func busy(now: UInt64) {
        inFlight = max(0, inFlight - 1)
        probing = false
        consecutiveFailures = 0
        fullUntilMillis = now + Self.fullMillis
    }

    static let fullMillis: UInt64 = 500

    /// Whether the node has no free slot now, as far as this gateway knows.
    func isFull(concurrency: UInt32, now: UInt64) -> Bool { fullUntilMillis > now || inFlight >= Int(max(1, concurrency)) }

    /// An attempt's outcome at `now`: counts decay, averages move, and three failures in a
    /// row open the breaker (1 s, doubling with each further failure, at most 60 s). Attempts
    /// that began before it opened and fail while it is open do not lengthen it: only a
    /// failure while it is closed, or of the probe after it, does.
    mutating func end(ok: Bool, ttftMillis: Double?, tokensPerSecond: Double?, now: UInt64) {
        inFlight = max(0, inFlight - 1)
        probing = false
        successes *= 0.95
        failures *= 0.95
        if ok {
            successes += 1
            consecutiveFailures = 0
            if let t = ttftMillis { self.ttftMillis = self.ttftMillis == 0 ? t : 0.8 * self.ttftMillis + 0.2 * t }
            if let r = tokensPerSecond { self.tokensPerSecond = self.tokensPerSecond == 0 ? r : 0.8 * self.tokensPerSecond + 0.2 * r }
        } else {
            failures += 1
            guard openUntilMillis <= now else { return }
            consecutiveFailures += 1
            if consecutiveFailures >= 3 {
                openUntilMillis = now + UInt64(min(60_000, 1_000 << min(6, consecutiveFailures - 3)))
            }
        }
    }
}

/// One routable offer: a node with its offer for the requested model, or a pipeline of shard
/// offers covering the model's layers (then `node` is the last shard's, `offer` sums the
/// shards' prices, and `stages` lists, per layer span in order, the shards that can serve it,
/// the first chosen and the rest its replacements).
public struct Candidate: Sendable {
    public var node: NodeRecord
    public var offer: Offer
    var stats: NodeStats
    /// What the network's gateways measured of the node (from the ledger), if anything.
    var measured: ServiceView? = nil
    var stages: [[Candidate]]? = nil

    var isPipeline: Bool { stages != nil }
}

/// Routing: the nodes that may serve a request, best first. Pure: the registry,
/// the live statistics and the time come in, an ordered plan goes out.
enum Routing {
    /// The offers of `nodes` for `model` that `policy` allows and whose breaker is
    /// closed at `now`, ordered by the policy's sort (ties by node key).
    /// `reputation` is the ledger's, 0...1 by operator (neutral 0.5 when unknown);
    /// the live success rate is a separate signal.
    /// `exact` holds the node keys whose backends re-execute bit for bit (from their `/health`).
    /// `measured` is what the network's gateways recorded of each node for this model: the
    /// day's uptime answers `min_uptime`, and its median latency and throughput stand in for
    /// this gateway's own figures until it has some.
    static func plan(nodes: [NodeRecord], stats: [Address: NodeStats], reputation: [Address: Double] = [:], exact: Set<Address> = [],
                     measured: [Address: ServiceView] = [:], model: String, policy: RoutingPolicy, now: UInt64) -> [Candidate] {
        func rep(_ n: NodeRecord) -> Double { reputation[n.owner] ?? 0.5 }
        var out: [Candidate] = []
        var shards: [Candidate] = []
        for n in nodes {
            guard let offer = n.offer(for: model) else { continue }
            let s = stats[n.nodeKey] ?? NodeStats()
            if s.isOut(now: now) { continue }
            if let allow = policy.allow, !allow.contains(n.nodeKey.text) { continue }
            if let deny = policy.deny, deny.contains(n.nodeKey.text) { continue }
            if let privacy = policy.privacy, offer.privacy != privacy { continue }
            if let maxPrice = policy.maxPrice, price(offer) > maxPrice { continue }
            if let min = policy.minReputation, rep(n) < min { continue }
            if policy.verify == "exact", !exact.contains(n.nodeKey) { continue }
            let m = measured[n.nodeKey]
            if let least = policy.minUptime, !((m?[.day]?.uptime).map { $0 >= least } ?? false) { continue }
            if offer.layers != nil {
                shards.append(Candidate(node: n, offer: offer, stats: s, measured: m))
            } else {
                out.append(Candidate(node: n, offer: offer, stats: s, measured: m))
            }
        }
        let sort = policy.sort ?? "balanced"
        let cheapest = out.map { price($0.offer) }.min() ?? 0
        // This gateway's own moving averages; before it has any, the network's day median; else a guess.
        func ttft(_ c: Candidate) -> Double { c.stats.ttftMillis > 0 ? c.stats.ttftMillis : c.measured?[.day]?.ttftMillis?.p50 ?? 50 }
        func rate(_ c: Candidate) -> Double { c.stats.tokensPerSecond > 0 ? c.stats.tokensPerSecond : c.measured?[.day]?.tokensPerSecond?.p50 ?? 100 }
        func score(_ c: Candidate) -> Double {
            let load = Double(c.stats.inFlight) / Double(max(1, c.offer.concurrency))
            switch sort {
            case "price": return price(c.offer) + load * 1e-9
            case "latency": return ttft(c) * (1 + load)
            case "throughput": return -rate(c) / (1 + load)
            case "reputation": return -rep(c.node) - c.stats.successRate * 0.01 + load * 0.001
            default:
                // Relative price, latency and load, discounted by reliability.
                let p = cheapest > 0 ? price(c.offer) / cheapest : 1
                let l = ttft(c) / 50
                return (p + 0.5 * l + load) / max(0.05, c.stats.successRate) / (0.5 + rep(c.node))
            }
        }
        // Nodes with a free slot first: a full one is tried only when every other is full too.
        func ordered(_ list: [Candidate]) -> [Candidate] {
            list.sorted { a, b in
                let fa = a.stats.isFull(concurrency: a.offer.concurrency, now: now), fb = b.stats.isFull(concurrency: b.offer.concurrency, now: now)
                if fa != fb { return !fa }
                let sa = score(a), sb = score(b)
                return sa != sb ? sa < sb : a.node.nodeKey < b.node.nodeKey
            }
        }
        let whole = policy.shards == "only" ? [] : ordered(out)
        guard policy.shards != "never", !shards.isEmpty else { return whole }
        // Each span's shards in the policy's order; a pipeline's price caps at max_price too.
        var bySpan: [LayerSpan: [Candidate]] = [:]
        for c in ordered(shards) { bySpan[c.offer.layers!, default: []].append(c) }
        let pipelines = Self.pipelines(bySpan, sortByPrice: sort == "price").filter { p in
            policy.maxPrice.map { price(p.offer) <= $0 } ?? true
        }
        return whole + pipelines
    }

    /// Chains of spans that cover a model's layers from 0 to its last, as pipeline candidates:
    /// fewest shards first (each hop costs a round trip per token), then cheapest; by price,
    /// cheapest first. At most `limit` of them.
    static func pipelines(_ bySpan: [LayerSpan: [Candidate]], sortByPrice: Bool, limit: Int = 8) -> [Candidate] {
        var chains: [[LayerSpan]] = []
        let spans = bySpan.keys.sorted { ($0.start, $0.end) < ($1.start, $1.end) }
        func extend(_ chain: [LayerSpan]) {
            guard chains.count < 64, chain.count < 16 else { return }
            let last = chain.last!
            if last.isLast { chains.append(chain); return }
            for s in spans where s.start == last.end && s.total == last.total { extend(chain + [s]) }
        }
        for s in spans where s.isFirst { extend([s]) }
        func cost(_ chain: [LayerSpan]) -> Double { chain.reduce(0) { $0 + price(bySpan[$1]![0].offer) } }
        chains.sort { a, b in
            let ka = sortByPrice ? (cost(a), Double(a.count)) : (Double(a.count), cost(a))
            let kb = sortByPrice ? (cost(b), Double(b.count)) : (Double(b.count), cost(b))
            return ka != kb ? ka < kb : a.map(\.end).lexicographicallyPrecedes(b.map(\.end))
        }
        return chains.prefix(limit).compactMap { chain -> Candidate? in
            let stages = chain.map { bySpan[$0]! }
            let tail = stages.last![0]
            var offer = tail.offer
            guard let priceIn = try? stages.reduce(Amount.zero, { try $0.adding($1[0].offer.priceIn) }),
                  let priceOut = try? stages.reduce(Amount.zero, { try $0.adding($1[0].offer.priceOut) }) else { return nil }
            offer.priceIn = priceIn
            offer.priceOut = priceOut
            offer.concurrency = stages.map { $0[0].offer.concurrency }.min() ?? 1
            offer.contextLength = stages.map { $0[0].offer.contextLength }.min() ?? 1
            offer.layers = nil
            return Candidate(node: tail.node, offer: offer, stats: tail.stats, stages: stages)
        }
    }

    /// An offer's price in PLX per million tokens, input and output together.
    static func price(_ o: Offer) -> Double { (Double(o.priceIn.units) + Double(o.priceOut.units)) / Double(Amount.unitsPerPLX) }
}

extension NodeStats: Codable {}
