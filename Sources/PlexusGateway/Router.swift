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

    enum CodingKeys: String, CodingKey {
        case sort, privacy, allow, deny
        case maxPrice = "max_price"
        case minReputation = "min_reputation"
        case timeoutMs = "timeout_ms"
    }

    public init() {}

    static let sorts: Set<String> = ["price", "latency", "throughput", "reputation", "balanced"]

    func validate() throws {
        if let sort, !Self.sorts.contains(sort) { throw PlexusError(.outOfRange, "plexus.sort must be one of \(Self.sorts.sorted().joined(separator: ", "))") }
        if let maxPrice, !(maxPrice >= 0 && maxPrice.isFinite) { throw PlexusError(.outOfRange, "plexus.max_price must be a non-negative number") }
        if let minReputation, !(0...1).contains(minReputation) { throw PlexusError(.outOfRange, "plexus.min_reputation must be 0...1") }
        if let timeoutMs, !(1...600_000).contains(timeoutMs) { throw PlexusError(.outOfRange, "plexus.timeout_ms must be 1...600000") }
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

    var successRate: Double { successes + failures == 0 ? 1 : successes / (successes + failures) }
}

/// One routable offer: a node with its offer for the requested model.
public struct Candidate: Sendable {
    public var node: NodeRecord
    public var offer: Offer
    var stats: NodeStats
}

/// Picks nodes for requests from the ledger's registry and live statistics.
final class NodeDirectory: @unchecked Sendable {
    // Invariant: all mutable state is touched only under `lock`.
    private let lock = NSLock()
    private var nodes: [NodeRecord] = []
    private var models: [String: ModelCard] = [:]
    private var stats: [Address: NodeStats] = [:]
    private(set) var refreshedMillis: UInt64 = 0
    let ledger: LedgerClient

    init(ledger: LedgerClient) { self.ledger = ledger }

    func refresh() async throws {
        async let n = ledger.nodes()
        async let m = ledger.models()
        let (nodes, models) = try await (n, m)
        lock.withLock {
            self.nodes = nodes
            self.models = Dictionary(models.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            refreshedMillis = SystemClock().nowMillis()
        }
    }

    func model(_ id: String) -> ModelCard? { lock.withLock { models[id] } }
    func allModels() -> [ModelCard] { lock.withLock { models.values.sorted { $0.id < $1.id } } }
    func servedModels() -> Set<String> { lock.withLock { Set(nodes.flatMap { $0.offers.map(\.model) }) } }

    /// Nodes that may serve `model` under `policy`, best first.
    func candidates(model: String, policy: RoutingPolicy, now: UInt64) -> [Candidate] {
        lock.withLock {
            var out: [Candidate] = []
            for n in nodes {
                guard let offer = n.offer(for: model) else { continue }
                let s = stats[n.nodeKey] ?? NodeStats()
                if s.openUntilMillis > now { continue }
                if let allow = policy.allow, !allow.contains(n.nodeKey.text) { continue }
                if let deny = policy.deny, deny.contains(n.nodeKey.text) { continue }
                if let privacy = policy.privacy, offer.privacy != privacy { continue }
                if let maxPrice = policy.maxPrice, Self.price(offer) > maxPrice { continue }
                if let min = policy.minReputation, s.successRate < min { continue }
                out.append(Candidate(node: n, offer: offer, stats: s))
            }
            let sort = policy.sort ?? "balanced"
            let cheapest = out.map { Self.price($0.offer) }.min() ?? 0
            func score(_ c: Candidate) -> Double {
                let load = Double(c.stats.inFlight) / Double(max(1, c.offer.concurrency))
                switch sort {
                case "price": return Self.price(c.offer) + load * 1e-9
                case "latency": return (c.stats.ttftMillis == 0 ? 50 : c.stats.ttftMillis) * (1 + load)
                case "throughput": return -(c.stats.tokensPerSecond == 0 ? 100 : c.stats.tokensPerSecond) / (1 + load)
                case "reputation": return -c.stats.successRate + load * 0.01
                default:
                    // Relative price, latency and load, discounted by reliability.
                    let p = cheapest > 0 ? Self.price(c.offer) / cheapest : 1
                    let l = (c.stats.ttftMillis == 0 ? 50 : c.stats.ttftMillis) / 50
                    return (p + 0.5 * l + load) / max(0.05, c.stats.successRate)
                }
            }
            return out.sorted { a, b in
                let sa = score(a), sb = score(b)
                return sa != sb ? sa < sb : a.node.nodeKey < b.node.nodeKey
            }
        }
    }

    static func price(_ o: Offer) -> Double { (Double(o.priceIn.units) + Double(o.priceOut.units)) / Double(Amount.unitsPerPLX) }

    func begin(_ node: Address) { lock.withLock { stats[node, default: NodeStats()].inFlight += 1 } }

    /// Records an attempt's outcome; failures open the breaker for a while.
    func end(_ node: Address, ok: Bool, ttftMillis: Double?, tokensPerSecond: Double?) {
        lock.withLock {
            var s = stats[node, default: NodeStats()]
            s.inFlight = max(0, s.inFlight - 1)
            s.successes *= 0.95
            s.failures *= 0.95
            if ok {
                s.successes += 1
                s.consecutiveFailures = 0
                if let t = ttftMillis { s.ttftMillis = s.ttftMillis == 0 ? t : 0.8 * s.ttftMillis + 0.2 * t }
                if let r = tokensPerSecond { s.tokensPerSecond = s.tokensPerSecond == 0 ? r : 0.8 * s.tokensPerSecond + 0.2 * r }
            } else {
                s.failures += 1
                s.consecutiveFailures += 1
                if s.consecutiveFailures >= 3 {
                    s.openUntilMillis = SystemClock().nowMillis() + UInt64(min(60_000, 1_000 << min(6, s.consecutiveFailures - 3)))
                }
            }
            stats[node] = s
        }
    }

    func statsView() -> [String: NodeStats] { lock.withLock { Dictionary(uniqueKeysWithValues: stats.map { ($0.key.text, $0.value) }) } }
}

extension NodeStats: Codable {}
