import AsyncHTTPClient
import Foundation
import PlexusCore
import Synchronization

/// What a gateway (or verifier) measured of each node and model since its last `report_service`:
/// every attempt it made (a request, or a health probe) and whether the node answered, with each
/// answered request's time to first token and decode throughput in the ledger's histograms.
public final class ServiceMeter: Sendable {
    private let samples = Mutex<[ServiceKey: ServiceSample]>([:])

    public init() {}

    /// Records one attempt on `node` for `model`.
    public func record(node: Address, model: String, answered: Bool, ttftMillis: Double? = nil, tokensPerSecond: Double? = nil) {
        samples.withLock { all in
            let key = ServiceKey(node: node, model: model)
            var s = all[key] ?? ServiceSample(node: node, model: model)
            guard s.attempts < ServiceSample.maxAttempts else { return }
            s.attempts += 1
            if answered {
                s.answered += 1
                if let t = ttftMillis { s.ttft[ServiceHistogram.bucket(t, first: ServiceHistogram.ttftFirstEdge)] += 1 }
                if let r = tokensPerSecond { s.throughput[ServiceHistogram.bucket(r, first: ServiceHistogram.throughputFirstEdge)] += 1 }
            }
            all[key] = s
        }
    }

    /// Takes what was measured, in a stable order.
    public func drain() -> [ServiceSample] {
        samples.withLock { all in
            defer { all = [:] }
            return all.sorted { $0.key < $1.key }.map(\.value)
        }
    }
}

/// Every `everyMillis`: probes each servable node's `/health` once, then sends the ledger what
/// `meter` holds (in reports of at most 64 samples), leaving out nodes run by `owner` (the
/// ledger would refuse them) and nodes no longer registered. A report the ledger refuses is
/// dropped and passed to `refused`: the measurements are a sample, not money.
public struct ServiceReporter: Sendable {
    public let ledger: LedgerClient
    public let meter: ServiceMeter
    public let everyMillis: UInt64
    /// The account whose nodes this reporter may not report on (nil: not known yet).
    public let owner: @Sendable () async -> Address?
    /// Sends one transaction (the caller's key, nonce and any ordering with its other transactions).
    public let send: @Sendable (Transaction.Body) async throws -> Void
    public let refused: @Sendable (Int, any Error) -> Void

    public init(ledger: LedgerClient, meter: ServiceMeter, everyMillis: UInt64, owner: @escaping @Sendable () async -> Address?,
                send: @escaping @Sendable (Transaction.Body) async throws -> Void, refused: @escaping @Sendable (Int, any Error) -> Void) {
        self.ledger = ledger
        self.meter = meter
        self.everyMillis = everyMillis
        self.owner = owner
        self.send = send
        self.refused = refused
    }

    /// Reports until cancelled (at once if `everyMillis` is 0).
    public func run() async {
        guard everyMillis > 0 else { return }
        var mine: Address?
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(everyMillis)))
            guard !Task.isCancelled else { return }
            if mine == nil { mine = await owner() }
            guard let mine, let nodes = try? await ledger.nodeRegistry().servable.filter({ $0.owner != mine }) else { continue }
            await withTaskGroup(of: Void.self) { group in
                for n in nodes {
                    group.addTask {
                        let up = await Self.answersHealth(n.endpoint)
                        for model in Set(n.offers.map(\.model)) { meter.record(node: n.nodeKey, model: model, answered: up) }
                    }
                }
            }
            let offered = Set(nodes.flatMap { n in n.offers.map { ServiceKey(node: n.nodeKey, model: $0.model) } })
            let samples = meter.drain().filter { offered.contains(ServiceKey(node: $0.node, model: $0.model)) }
            for start in stride(from: 0, to: samples.count, by: ServiceSample.maxPerReport) {
                let batch = Array(samples[start..<min(samples.count, start + ServiceSample.maxPerReport)])
                do { try await send(.reportService(samples: batch)) } catch { refused(batch.count, error) }
            }
        }
    }

    /// Whether the node at `endpoint` answers `/health` within two seconds (a node that says it
    /// is degraded, 503, still answers).
    static func answersHealth(_ endpoint: String) async -> Bool {
        guard let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: endpoint + "/health"), timeout: .seconds(2)) else { return false }
        _ = try? await r.body.collect(upTo: 1 << 16)
        return r.status == .ok || r.status == .serviceUnavailable
    }
}
