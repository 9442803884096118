import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import Synchronization

/// What this gateway measured of each node and model since its last `report_service`: every
/// attempt it sent (a request, or a health probe) and whether the node answered, with each
/// answered request's time to first token and decode throughput in the ledger's histograms.
final class ServiceMeter: Sendable {
    private let samples = Mutex<[ServiceKey: ServiceSample]>([:])

    /// Records one attempt on `node` for `model`.
    func record(node: Address, model: String, answered: Bool, ttftMillis: Double? = nil, tokensPerSecond: Double? = nil) {
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
    func drain() -> [ServiceSample] {
        samples.withLock { all in
            defer { all = [:] }
            return all.sorted { $0.key < $1.key }.map(\.value)
        }
    }
}

extension Gateway {
    /// Every `serviceReportMillis`: probes each registered node's `/health` once, then sends the
    /// ledger what was measured (in reports of at most 64 samples), leaving out nodes run by this
    /// gateway's own owner and nodes no longer registered. A report the ledger refuses is
    /// dropped and logged: the measurements are a sample, not money.
    func reportService() async {
        let every = config.serviceReportMillis
        guard every > 0 else { return }
        var owner: Address?
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int64(every)))
            guard !Task.isCancelled else { return }
            if owner == nil { owner = try? await ledger.gateways().first { $0.key == config.key.address }?.owner }
            guard let owner else { continue }
            let nodes = directory.registered().filter { $0.owner != owner }
            await withTaskGroup(of: Void.self) { group in
                for n in nodes {
                    group.addTask {
                        let up = await Self.answersHealth(n.endpoint)
                        for model in Set(n.offers.map(\.model)) { self.meter.record(node: n.nodeKey, model: model, answered: up) }
                    }
                }
            }
            let offered = Set(nodes.flatMap { n in n.offers.map { ServiceKey(node: n.nodeKey, model: $0.model) } })
            let samples = meter.drain().filter { offered.contains(ServiceKey(node: $0.node, model: $0.model)) }
            for start in stride(from: 0, to: samples.count, by: ServiceSample.maxPerReport) {
                let batch = Array(samples[start..<min(samples.count, start + ServiceSample.maxPerReport)])
                do {
                    _ = try await ledger.send(.reportService(samples: batch), from: config.key)
                    GatewayMetrics.serviceReports.increment()
                } catch {
                    logger.info("service report refused", metadata: ["samples": "\(batch.count)", "error": "\(error)"])
                }
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
