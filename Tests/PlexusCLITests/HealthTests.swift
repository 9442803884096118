import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusTestKit
import Testing

/// `/health` of each server says what is wrong and why: with the ledger paused (SIGSTOP),
/// the gateway and the nodes turn unhealthy naming the ledger; resumed, all are ok again.
extension MarketNetworkTests {
@Suite struct HealthTests {
    static func health(_ url: String) async -> (Int, [String: Any])? {
        guard let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/health"), timeout: .seconds(3)),
              let body = try? await r.body.collect(upTo: 1 << 16) else { return nil }
        return (Int(r.status.code), (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:])
    }

    static func components(_ j: [String: Any]) -> [String] {
        ((j["problems"] as? [[String: Any]]) ?? []).compactMap { $0["component"] as? String }
    }

    @Test func aPausedLedgerShowsInEveryHealthAndClears() async throws {
        let dir = try TemporaryDirectory("plexus-health")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let gateway = String(info.baseURL.dropLast(3))
        let ledgerPid = try #require(info.pids.first)
        // The node's first look at its registration comes within a few seconds of it registering.
        var all: [(String, Int, [String: Any])] = []
        for _ in 0..<100 {
            all = []
            for url in [info.ledger, gateway] + info.nodes { if let (s, j) = await Self.health(url) { all.append((url, s, j)) } }
            if all.count == 2 + info.nodes.count && all.allSatisfy({ $0.1 == 200 }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(all.count == 2 + info.nodes.count && all.allSatisfy { $0.1 == 200 && $0.2["status"] as? String == "ok" }, "\(all)")

        kill(ledgerPid, SIGSTOP)
        var resumed = false
        defer { if !resumed { kill(ledgerPid, SIGCONT) } }
        var gatewaySays: [String] = [], nodeSays: [String] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let (s, j) = await Self.health(gateway), s == 503 { gatewaySays = Self.components(j) }
            if let (s, j) = await Self.health(info.nodes[0]), s == 503 { nodeSays = Self.components(j) }
            if gatewaySays.contains("ledger") && nodeSays.contains("ledger") { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(gatewaySays.contains("ledger") && nodeSays.contains("ledger"), "gateway \(gatewaySays), node \(nodeSays)")

        kill(ledgerPid, SIGCONT)
        resumed = true
        var healed = false
        let again = Date().addingTimeInterval(30)
        while Date() < again && !healed {
            var ok = true
            for url in [info.ledger, gateway, info.nodes[0]] where await Self.health(url)?.0 != 200 { ok = false }
            healed = ok
            if !healed { try await Task.sleep(for: .seconds(1)) }
        }
        #expect(healed)
        await up.stop()
    }
}
}
