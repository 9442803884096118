import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger

/// Picks nodes for requests from the ledger's registry and live statistics.
final class NodeDirectory: @unchecked Sendable {
    // Invariant: all mutable state is touched only under `lock`.
    private let lock = NSLock()
    private var nodes: [NodeRecord] = []
    /// The ledger's reputation of each node's operator, 0...1.
    private var reputation: [Address: Double] = [:]
    /// Node keys whose `/health` says their answers re-execute bit for bit, and the
    /// endpoint each was asked at (asked again when a node's endpoint changes).
    private var exact: Set<Address> = []
    private var probed: [Address: String] = [:]
    private var models: [String: ModelCard] = [:]
    private var stats: [Address: NodeStats] = [:]
    /// Service measured by the network's gateways and recorded on the ledger, by node key and model.
    private var measured: [ServiceKey: ServiceView] = [:]
    private(set) var refreshedMillis: UInt64 = 0
    /// Why the last refresh failed (nil once one succeeds), for `/health`.
    private var refreshError: String?
    let ledger: LedgerClient

    init(ledger: LedgerClient) { self.ledger = ledger }

    func refresh() async throws {
        async let n = ledger.nodeRegistry()
        async let m = ledger.models()
        // What gateways measured of the nodes (kept from the last refresh if it cannot be read now).
        async let p = try? ledger.marketPrices()
        let registry: NodesView, models: [ModelCard]
        do {
            (registry, models) = try await (n, m)
        } catch {
            lock.withLock { refreshError = "\(error)" }
            throw error
        }
        if let markets = await p {
            let measured = markets.measuredService
            lock.withLock { self.measured = measured }
        }
        // Jailed nodes get no traffic.
        let nodes = registry.servable
        var reputation: [Address: Double] = [:]
        for n in nodes { reputation[n.owner] = registry.standing?[n.owner.text]?.reputation }
        let unprobed = lock.withLock { nodes.filter { probed[$0.nodeKey] != $0.endpoint } }
        let answers = await withTaskGroup(of: (NodeRecord, Bool?).self) { group in
            for n in unprobed { group.addTask { (n, await Self.isExact(n)) } }
            var out: [(NodeRecord, Bool)] = []
            for await (n, ok) in group { if let ok { out.append((n, ok)) } }
            return out
        }
        load(nodes: nodes, models: models, reputation: reputation, exact: answers)
    }

    /// Takes a registry as the ledger lists it (servable nodes, model cards, reputation by
    /// operator) and what nodes' `/health` said of exact re-execution.
    func load(nodes: [NodeRecord], models: [ModelCard], reputation: [Address: Double] = [:], exact answers: [(NodeRecord, Bool)] = []) {
        lock.withLock {
            for (n, ok) in answers {
                probed[n.nodeKey] = n.endpoint
                if ok { exact.insert(n.nodeKey) } else { exact.remove(n.nodeKey) }
            }
            self.nodes = nodes
            self.reputation = reputation
            self.models = Dictionary(models.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            refreshedMillis = SystemClock().nowMillis()
            refreshError = nil
        }
    }

    /// For `/health`: when the registry was last read and why reading it failed since; the
    /// nodes listed and how many of them are out (breaker open) at `now`.
    func health(now: UInt64) -> (refreshedMillis: UInt64, refreshError: String?, nodes: Int, out: Int) {
        lock.withLock {
            (refreshedMillis, refreshError, nodes.count, nodes.filter { stats[$0.nodeKey]?.isOut(now: now) == true }.count)
        }
    }

    func model(_ id: String) -> ModelCard? { lock.withLock { models[id] } }
    func allModels() -> [ModelCard] { lock.withLock { models.values.sorted { $0.id < $1.id } } }
    /// How the model's layers are served (whole-model nodes, shard spans, gaps).
    func coverage(model: String) -> ShardCoverage { lock.withLock { ShardCoverage.of(model, nodes: nodes) } }
    /// The median over `model`'s nodes of their time to first token as this gateway measured it
    /// (moving averages; nodes not yet measured left out), in milliseconds.
    func medianTimeToFirstToken(_ model: String) -> Double? {
        lock.withLock {
            let t = nodes.filter { $0.offers.contains { $0.model == model } }.compactMap { stats[$0.nodeKey]?.ttftMillis }.filter { $0 > 0 }.sorted()
            return t.isEmpty ? nil : t[t.count / 2]
        }
    }

    /// The whole-model offers of `model` by nodes that may get traffic.
    func offers(_ model: String) -> [Offer] { lock.withLock { nodes.flatMap { $0.offers.filter { $0.model == model && $0.layers == nil } } } }
    func servedModels() -> Set<String> { lock.withLock { Set(nodes.flatMap { $0.offers.map(\.model) }) } }

    /// Nodes that may serve `model` under `policy`, best first (see `Routing.plan`).
    func candidates(model: String, policy: RoutingPolicy, now: UInt64) -> [Candidate] {
        lock.withLock {
            var service: [Address: ServiceView] = [:]
            for n in nodes { service[n.nodeKey] = measured[ServiceKey(node: n.nodeKey, model: model)] }
            return Routing.plan(nodes: nodes, stats: stats, reputation: reputation, exact: exact, measured: service, model: model, policy: policy, now: now)
        }
    }

    /// The whole-model offers of `model`, each with what the network's gateways measured of its node.
    func endpoints(_ model: String) -> [(node: NodeRecord, offer: Offer, measured: ServiceView?)] {
        lock.withLock {
            nodes.flatMap { n in
                n.offers.filter { $0.model == model && $0.layers == nil }.map { (n, $0, measured[ServiceKey(node: n.nodeKey, model: model)]) }
            }.sorted { $0.node.nodeKey < $1.node.nodeKey }
        }
    }


    /// Whether the node's `/health` says `"exact": true` (healthy or not: an unhealthy node still
    /// says what its backend is); nil when it cannot be asked now (asked again at the next refresh).
    static func isExact(_ n: NodeRecord) async -> Bool? {
        struct Health: Decodable { var exact: Bool? }
        guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: n.endpoint + "/health"), timeout: .seconds(2)),
              response.status == .ok || response.status == .serviceUnavailable, let body = try? await response.body.collect(upTo: 1 << 16) else { return nil }
        return (try? JSONDecoder().decode(Health.self, from: Data(buffer: body)))?.exact == true
    }

    func begin(_ node: Address) { lock.withLock { stats[node, default: NodeStats()].begin() } }

    /// Records an attempt's outcome; failures open the breaker for a while.
    func end(_ node: Address, ok: Bool, ttftMillis: Double?, tokensPerSecond: Double?) {
        let now = SystemClock().nowMillis()
        lock.withLock { stats[node, default: NodeStats()].end(ok: ok, ttftMillis: ttftMillis, tokensPerSecond: tokensPerSecond, now: now) }
    }

    /// An attempt ended with no verdict on the node (the client went away).
    func abandon(_ node: Address) { lock.withLock { stats[node, default: NodeStats()].abandon() } }

    /// The node sent the first piece of an answer: it is up, and its breaker closes (the
    /// other requests need not wait for the end of a half-open probe's answer).
    func answered(_ node: Address) { lock.withLock { stats[node, default: NodeStats()].answered() } }

    /// The node refused an attempt because it was full: routed after the others for a moment.
    func busy(_ node: Address) {
        let now = SystemClock().nowMillis()
        lock.withLock { stats[node, default: NodeStats()].busy(now: now) }
    }

    func statsView() -> [String: NodeStats] { lock.withLock { Dictionary(uniqueKeysWithValues: stats.map { ($0.key.text, $0.value) }) } }
}

