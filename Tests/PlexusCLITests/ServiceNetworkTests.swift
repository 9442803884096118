import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// Measured service through a whole network: the gateway probes its nodes and reports the
/// requests it sent them; the ledger's market view, `plexus market prices`, the gateway's
/// `/v1/models` and `plexus models compare` show uptime, latency and throughput per node; a
/// node killed shows its uptime falling while the others keep theirs, and `min_uptime` routes
/// around it.
extension MarketNetworkTests {
@Suite struct ServiceNetworkTests {
    @Test func gatewaysMeasureNodesAndTheLedgerShowsIt() async throws {
        let dir = try TemporaryDirectory("plexus-service")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo", "--report-every", "1"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        func ask(_ policy: [String: Any] = [:]) async throws -> (Int, String?) {
            let (r, j) = try await NetworkTests.post(info, ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "one two three"]],
                                                            "plexus": policy])
            return (Int(r.status.code), (j["error"] as? [String: Any])?["code"] as? String)
        }
        for _ in 0..<6 { #expect(try await ask().0 == 200) }
        /// Waits (up to 3 minutes) until the ledger's asks for the echo model satisfy `done`.
        func waitForAsks(_ what: String, _ done: ([MarketView.Ask]) -> Bool) async throws -> [MarketView.Ask] {
            let deadline = Date().addingTimeInterval(180)
            while true {
                let asks = try await ledger.marketPrices(model: "echo").first?.asks ?? []
                if done(asks) { return asks }
                guard Date() < deadline else { throw PlexusError(.io, "never \(what): \(asks)") }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        // Every node measured: probes answered, and the requests' first-token times and throughput recorded.
        let measured = try await waitForAsks("measured") { asks in
            asks.count == 3 && asks.allSatisfy { ($0.service?[.fiveMinutes]?.attempts ?? 0) >= 2 }
                && asks.contains { $0.service?[.day]?.ttftMillis != nil && $0.service?[.day]?.tokensPerSecond != nil }
        }
        for a in measured {
            let five = try #require(a.service?[.fiveMinutes])
            #expect(five.uptime == 1 && five.answered == five.attempts && five.reports >= 1, "\(a)")
        }
        let served = measured.compactMap { $0.service?[.day] }.reduce(0) { $0 + ($1.ttftMillis == nil ? 0 : 1) }
        #expect(served >= 1)

        // Shown by the market view, `plexus market prices`, `/v1/models` and `plexus models compare`.
        let (status, text) = try await PlexusProcess.run(["market", "prices", "--model", "echo", "--ledger", info.ledger], logDirectory: dir.path)
        #expect(status == 0 && text.contains("uptime 5m 100.0%") && text.contains("first token p50"), "\(text)")
        let models = try await NetworkTests.get(info, "/models")
        let entry = ((models["data"] as? [[String: Any]]) ?? []).first { $0["id"] as? String == "echo" } ?? [:]
        let endpoints = (entry["endpoints"] as? [[String: Any]]) ?? []
        #expect(endpoints.count == 3 && entry["uptime_1d"] as? Double == 1, "\(entry)")
        #expect(endpoints.contains { (($0["service"] as? [String: Any])?["1d"] as? [String: Any])?["ttft_ms"] != nil }, "\(endpoints)")
        let (cStatus, compare) = try await PlexusProcess.run(["models", "compare", "--gateway", info.baseURL, "--api-key", info.apiKey], logDirectory: dir.path)
        #expect(cStatus == 0 && compare.contains("uptime 1d") && compare.contains("100.0%"), "\(compare)")

        // One node killed: its uptime falls, the others keep theirs.
        let registry = try await ledger.nodeRegistry()
        let victim = try #require(registry.nodes.first { $0.endpoint == info.nodes[0] })
        kill(info.pids[1], SIGKILL)
        let after = try await waitForAsks("the killed node's uptime fell") { asks in
            asks.first { $0.node == victim.nodeKey }?.service?[.fiveMinutes]?.uptime.map { $0 < 1 } ?? false
        }
        for a in after where a.node != victim.nodeKey { #expect(a.service?[.fiveMinutes]?.uptime == 1, "\(a)") }
        print("service: killed node's 5-minute uptime \(after.first { $0.node == victim.nodeKey }?.service?[.fiveMinutes]?.uptime ?? -1)")

        // min_uptime: the killed node is routed around; asked for alone, there is no node that qualifies.
        // (The gateway reads the ledger's figures at its next refresh, every 2 s.)
        try await Task.sleep(for: .seconds(3))
        #expect(try await ask(["min_uptime": 1]).0 == 200)
        let alone = try await ask(["min_uptime": 1, "allow": [victim.nodeKey.text]])
        #expect(alone.0 == 503, "\(alone)")
        #expect(try await ask(["min_uptime": 2]).0 == 400)
    }
}
}
