import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Synchronization
import Testing

/// The spot price through real processes: on a network whose capacity is small and whose
/// target utilization is 1 % (`plexus up --param …`), a little traffic raises the echo model's premium; the gateway
/// quotes it at admission, `max_price` counts it, `/v1/models` and `plexus market prices` show
/// it, and each request settles at its ask plus the premium it was quoted, to the treasury.
extension MarketNetworkTests {
@Suite struct SpotNetworkTests {
    static func body() -> [String: Any] {
        ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "one two three four five six seven eight"]]]
    }

    @Test func trafficRaisesThePremiumAndRequestsPayTheirQuote() async throws {
        let dir = try TemporaryDirectory("plexus-spot")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo", "--param", "slotTokensPerSecond=1",
                                    "--param", "premiumWindowMillis=20000", "--param", "premiumPeriodMillis=200",
                                    "--param", "premiumTargetBps=100", "--param", "premiumBandBps=0"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        let body = Self.body()
        // Load: 2 clients, a request each every 50 ms or so, until the premium has risen a few steps (light: the suite runs beside it).
        final class Stop: Sendable { let flag = Atomic<Bool>(false) }
        let stop = Stop()
        let load = Task {
            await withTaskGroup(of: [String].self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var ids: [String] = []
                        while !stop.flag.load(ordering: .relaxed) {
                            if let (r, _) = try? await NetworkTests.post(info, Self.body()), r.status == .ok, let id = r.headers.first(name: "x-plexus-request-id") { ids.append(id) }
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                        return ids
                    }
                }
                var all: [String] = []
                for await ids in group { all += ids }
                return all
            }
        }
        var premium: UInt64 = 0
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            premium = try await ledger.marketPrices(model: "echo").first?.premium ?? 0
            if premium >= 3 * Params.defaults[.premiumStep] { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(premium > 0, "the premium did not rise")
        // While it is up: max_price at the cheapest ask (0.1 + 0.2 PLX per million) leaves no node; /v1/models shows the premium.
        var capped = body
        capped["plexus"] = ["max_price": 0.3]
        let (r503, _) = try await NetworkTests.post(info, capped)
        #expect(r503.status == .serviceUnavailable)
        let models = try await NetworkTests.get(info, "/models")
        let pricing = ((models["data"] as? [[String: Any]])?.first?["pricing"] as? [String: Any]) ?? [:]
        #expect(UInt64(pricing["premium"] as? String ?? "") ?? 0 > 0, "\(models)")
        let (status, shown) = try await PlexusProcess.run(["market", "prices", "--model", "echo", "--ledger", info.ledger], logDirectory: dir.path)
        #expect(status == 0 && shown.contains("premium"), "\(shown)")
        stop.flag.store(true, ordering: .relaxed)
        let ids = await load.value.compactMap { try? Hash256(hex: $0) }
        #expect(ids.count > 5)

        // Every request settles; those quoted a premium paid exactly their ask plus it.
        var settled: [Hash256: Settlement] = [:]
        let until = Date().addingTimeInterval(60)
        while Date() < until {
            settled = try await ledger.settlements(ids)
            if settled.count == ids.count { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(settled.count == ids.count)
        var withPremium = 0
        for id in ids.suffix(40) {
            guard let s = settled[id] else { continue }
            let record = try await NetworkTests.get(info, "/receipts/\(id.hex)")
            let request = record["request"] as? [String: Any] ?? [:]
            let quote = request["quote"] as? [String: Any]
            let receipts = (request["receipts"] as? [[String: Any]]) ?? []
            var ask: UInt64 = 0, tokens: UInt64 = 0
            for r in receipts {
                let input = (r["inputTokens"] as? NSNumber)?.uint64Value ?? 0, output = (r["outputTokens"] as? NSNumber)?.uint64Value ?? 0
                let pin = UInt64(r["priceIn"] as? String ?? "") ?? 0, pout = UInt64(r["priceOut"] as? String ?? "") ?? 0
                ask += (input * pin + output * pout + 999_999) / 1_000_000
                tokens += input + output
            }
            let p = (quote?["premium"] as? NSNumber)?.uint64Value ?? 0
            let paid = (tokens * p + 999_999) / 1_000_000
            #expect(s.charge.units == ask + paid, "request \(id.hex.prefix(12)): charged \(s.charge.units), ask \(ask) + premium \(paid)")
            if p > 0 { withPremium += 1 }
        }
        #expect(withPremium > 0, "no settled request was quoted a premium")
        await up.stop()
    }
}
}
