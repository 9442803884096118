import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// Spot checks through real processes: a development ledger, an engine node, a gateway,
/// an honest verifier and a lazy one (the drill) with more stake. Every check of the
/// node's first requests is drawn; the honest verifier's checks pass with evidence, the
/// lazy one's pass without it is caught on the ledger: it is slashed and jailed, and
/// the later checks go to the honest one.
@Suite(.serialized) struct VerificationPathTests {
    @Test func checksPassWithEvidenceAndALazyVerifierIsCaught() async throws {
        let dir = try TemporaryDirectory("plexus-verification")
        defer { dir.remove() }
        let env = ["PLEXUS_HOME": dir.path + "/home"]
        func run(_ args: [String]) throws -> String {
            let (status, out) = try PlexusProcess.run(args, environment: env, logDirectory: dir.path)
            #expect(status == 0, "plexus \(args.joined(separator: " ")): \(out.suffix(1_500))")
            guard status == 0 else { throw PlexusError(.io, "plexus \(args[0]) failed") }
            return out
        }
        var services: [PlexusProcess] = []
        defer { for s in services.reversed() { s.terminate() } }
        let ledgerProcess = try PlexusProcess(["ledger", "start", "--dev", "--port", "0", "--port-file", dir.path + "/ledger.port",
                                               "--block-interval", "50", "--heartbeat-ms", "200"], environment: env, logDirectory: dir.path)
        services.append(ledgerProcess)
        let ledgerURL = "http://127.0.0.1:\(try PlexusProcess.waitForPort(file: dir.path + "/ledger.port", process: ledgerProcess))"
        let ledger = LedgerClient(baseURL: ledgerURL)
        let me = try KeyFile.read(dir.path + "/home/keys/default.json").address
        for name in ["node", "gateway", "honest", "lazy"] { _ = try run(["keys", "new", "--out", dir.path + "/\(name).json"]) }
        let keys = try ["node", "gateway", "honest", "lazy"].map { try KeyFile.read(dir.path + "/\($0).json") }
        for k in keys { _ = try run(["tx", "transfer", "--to", k.address.text, "--amount", "1000", "--ledger", ledgerURL]) }
        let weights = try TinyModel.write(to: dir.path + "/tiny.gguf")
        _ = try run(["models", "publish", weights, "--id", "tiny", "--license", "mit", "--ledger", ledgerURL])
        let node = try PlexusProcess(["node", "start", "--ledger", ledgerURL, "--key", dir.path + "/node.json", "--model", "tiny",
                                      "--weights", weights, "--price-in", "0.1", "--price-out", "0.2", "--threads", "1",
                                      "--port", "0", "--port-file", dir.path + "/node.port"], environment: env, logDirectory: dir.path)
        services.append(node)
        _ = try PlexusProcess.waitForPort(file: dir.path + "/node.port", seconds: 120, process: node)
        let apiKey = try run(["gateway", "keys", "create", "--account", me.text, "--data", dir.path + "/gw"])
            .split(separator: "\n").last.map(String.init) ?? ""
        _ = try run(["tx", "deposit", "--amount", "50", "--ledger", ledgerURL])
        let gateway = try PlexusProcess(["gateway", "start", "--ledger", ledgerURL, "--key", dir.path + "/gateway.json",
                                         "--owner-key", dir.path + "/home/keys/default.json", "--data", dir.path + "/gw",
                                         "--port", "0", "--port-file", dir.path + "/gw.port", "--settle-interval-ms", "200"],
                                        environment: env, logDirectory: dir.path)
        services.append(gateway)
        let gatewayURL = "http://127.0.0.1:\(try PlexusProcess.waitForPort(file: dir.path + "/gw.port", seconds: 60, process: gateway))"
        for (name, stake, drill) in [("honest", "10", false), ("lazy", "100", true)] {
            let v = try PlexusProcess(["verifier", "start", "--ledger", ledgerURL, "--key", dir.path + "/\(name).json", "--gateway", gatewayURL,
                                       "--model", weights, "--stake", stake, "--threads", "1"] + (drill ? ["--adversary", "lazy"] : []),
                                      environment: env, logDirectory: dir.path)
            services.append(v)
        }
        let honest = keys[2].address, lazy = keys[3].address
        for _ in 0..<300 where try await ledger.verifiers().count < 2 { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await ledger.verifiers().count == 2)

        let info = NetworkTests.Info(baseURL: gatewayURL + "/v1", apiKey: apiKey, ledger: ledgerURL, requestor: me, nodes: [], pids: [])
        var ids: [Hash256] = []
        let bodies: [[String: Any]] = [
            ["max_tokens": 8, "temperature": 0], ["max_tokens": 12, "temperature": 0.8, "seed": 7],
            ["max_tokens": 6, "temperature": 0.9, "top_p": 0.9, "top_k": 20, "seed": 3], ["max_tokens": 10, "temperature": 0],
            ["max_tokens": 9, "temperature": 0.7, "min_p": 0.05, "seed": 11], ["max_tokens": 7, "temperature": 0],
        ]
        for (i, extra) in bodies.enumerated() {
            var body: [String: Any] = ["model": "tiny", "messages": [["role": "user", "content": "request \(i)"]]]
            body.merge(extra) { $1 }
            var answer: (HTTPClientResponse, [String: Any])?
            for _ in 0..<50 {
                answer = try await NetworkTests.post(info, body)
                if answer?.0.status == .ok { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let (response, json) = try #require(answer)
            #expect(response.status == .ok, "\(json)")
            ids.append(try Hash256(hex: try #require(response.headers.first(name: "x-plexus-request-id"))))
            // One at a time, so that the lazy verifier's jail shows in the later draws.
            for _ in 0..<150 {
                if let s = try await ledger.verification(ids.last!)?.check?.state, !["undrawn", "assigned"].contains(s) { break }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        var states: [String: Int] = [:]
        for id in ids {
            let v = try #require(try await ledger.verification(id))
            let check = try #require(v.check, "every engine receipt is exactly verifiable")
            states[check.state, default: 0] += 1
            #expect(check.sampleRateBps == 10_000)  // a node's first requests are all checked
            switch check.state {
            case "passed": #expect(check.verifier == honest)
            case "faulted": #expect(check.verifier == lazy)
            default: Issue.record("check \(id.hex.prefix(16)) ended \(check.state)")
            }
        }
        #expect(states["passed", default: 0] >= 1 && states["faulted", default: 0] >= 1, "\(states)")
        let lazyStanding = try await ledger.standing(of: lazy)
        #expect(lazyStanding.jailed && lazyStanding.faults >= 1 && lazyStanding.staked.units < 100 * Amount.unitsPerPLX)
        let honestStanding = try await ledger.standing(of: honest)
        #expect(!honestStanding.jailed && honestStanding.verdicts >= 1 && honestStanding.reputation > 0.5)
        let status = try run(["verifier", "status", "--ledger", ledgerURL, "--address", lazy.text])
        #expect(status.contains("jailed"), "\(status)")
    }

    /// Every drill is caught on every request where it deviates, and honest requests pass,
    /// with the node and the verifier on different kernel paths (`plexus bench detect`).
    @Test func everyDrillIsCaughtAndHonestWorkPasses() throws {
        let dir = try TemporaryDirectory("plexus-detect")
        defer { dir.remove() }
        let weights = try TinyModel.write(to: dir.path + "/tiny.gguf")
        let (status, out) = try PlexusProcess.run(["bench", "detect", "--model", weights, "--requests", "8", "--honest", "30",
                                                   "--max-tokens", "12", "--threads", "1", "--json"],
                                                  environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        #expect(status == 0, "\(out.suffix(2_000))")
        let json = try #require(out.firstIndex(of: "{").map { String(out[$0...]) })
        let result = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(result["ok"] as? Bool == true)
        let rows = try #require(result["rows"] as? [[String: Any]])
        #expect(Set(rows.compactMap { $0["mode"] as? String }) == Set(["honest", "quant-swap", "layer-skip", "wrong-seed", "tamper", "random", "replay", "bad-commitment"]))
        for row in rows {
            let mode = row["mode"] as? String ?? "", n = row["requests"] as? Int ?? 0, failed = row["failed"] as? Int ?? -1
            let identical = row["identical"] as? Int ?? 0
            if mode == "honest" {
                #expect(n == 30 && failed == 0)
                #expect((row["kernel_pairs"] as? [String: Int])?.keys.allSatisfy { k in k.split(separator: "→").count == 2 } == true)
            } else {
                #expect(n == 8 && failed == n - identical, "\(mode): \(row)")
                // Only a wrong seed can draw the honest answer, and not often.
                #expect(mode == "wrong-seed" ? identical <= 2 : identical == 0, "\(mode): \(row)")
            }
        }
    }
}
