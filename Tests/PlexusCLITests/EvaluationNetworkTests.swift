import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// The benchmark suite on the default model through a whole network: `plexus models evaluate`
/// asks every task through the gateway, records the score with the settled requests behind it,
/// a re-run gives the same answers and score, and `plexus models compare` and the gateway's
/// `/v1/models` show it beside price, latency and licence.
extension MarketNetworkTests {
@Suite struct EvaluationNetworkTests {
    @Test func theDefaultModelsScoreIsRecordedReproducibleAndShown() async throws {
        let dir = try TemporaryDirectory("plexus-eval")
        defer { dir.remove() }
        let store = (try TestModels.smolLM2() as NSString).deletingLastPathComponent
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--store", store],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 240)
        let ledger = LedgerClient(baseURL: info.ledger)
        func plexus(_ args: [String]) async throws -> String {
            let (status, out) = try await PlexusProcess.run(args, logDirectory: dir.path)
            #expect(status == 0, "plexus \(args.prefix(3)) exited \(status): \(out.suffix(600))")
            return out
        }
        func last(_ out: String) -> String { out.split(separator: "\n").last.map(String.init) ?? "" }
        // An evaluator: funded, staked (minVerifierStake), with escrow and an API key.
        let keyPath = dir.path + "/evaluator.json"
        _ = try await plexus(["keys", "new", "--out", keyPath])
        let evaluator = last(try await plexus(["keys", "show", "--key", keyPath]))
        let requestorKey = upDir + "/keys/requestor.json"
        _ = try await plexus(["tx", "transfer", "--to", evaluator, "--amount", "30", "--key", requestorKey, "--ledger", info.ledger])
        _ = try await plexus(["tx", "stake", "--amount", "20", "--key", keyPath, "--ledger", info.ledger])
        _ = try await plexus(["tx", "deposit", "--amount", "5", "--key", keyPath, "--ledger", info.ledger])
        let apiKey = last(try await plexus(["gateway", "keys", "create", "--account", evaluator, "--data", upDir + "/gateway"]))

        func evaluate(_ extra: [String]) async throws -> [String: Any] {
            let out = try await plexus(["models", "evaluate", "smollm2-135m", "--gateway", info.baseURL, "--api-key", apiKey, "--key", keyPath,
                                        "--ledger", info.ledger, "--json"] + extra)
            guard let start = out.firstIndex(of: "{") else { return [:] }
            return (try? JSONSerialization.jsonObject(with: Data(out[start...].utf8))) as? [String: Any] ?? [:]
        }
        let first = try await evaluate([])
        let answers = (first["answers"] as? [[String: Any]]) ?? []
        #expect(answers.count == 16 && first["recorded"] is String, "\(first)")
        let recorded = try #require(try await ledger.evaluations("smollm2-135m").first)
        #expect(recorded.tasks == 16 && Int(recorded.correct) == first["correct"] as? Int && recorded.evaluator.text == evaluator)
        // Each request behind the score is settled on the ledger, the evaluator's, for the model.
        let settled = try await ledger.settlements(recorded.requests)
        #expect(settled.count == 16 && settled.values.allSatisfy { $0.requestor.text == evaluator && $0.model == "smollm2-135m" })
        print("evaluation: smollm2-135m \(recorded.correct) of \(recorded.tasks) on \(recorded.name)")

        // Reproducible: the same answers and score again (greedy, on the built-in engine).
        let again = try await evaluate(["--dry-run"])
        #expect(again["correct"] as? Int == first["correct"] as? Int)
        let outputs = { (j: [String: Any]) in ((j["answers"] as? [[String: Any]]) ?? []).map { $0["output"] as? String ?? "" } }
        #expect(outputs(again) == outputs(first))

        // Shown beside price, latency and licence.
        let models = try await NetworkTests.get(info, "/models")
        let entry = ((models["data"] as? [[String: Any]]) ?? []).first { $0["id"] as? String == "smollm2-135m" } ?? [:]
        let shown = (entry["evaluations"] as? [[String: Any]])?.first
        #expect(shown?["correct"] as? Int == Int(recorded.correct) && shown?["tasks"] as? Int == 16, "\(entry)")
        #expect(entry["license"] != nil && entry["pricing"] != nil)
        // Routing by it: min_quality above the model's best score is refused, at or below it served; a licence's uses likewise.
        let score = Double(recorded.scoreBps) / 10_000
        func ask(_ policy: [String: Any]) async throws -> (Int, String?) {
            let (r, j) = try await NetworkTests.post(info, ["model": "smollm2-135m", "max_tokens": 2, "messages": [["role": "user", "content": "Hi"]], "plexus": policy])
            return (Int(r.status.code), (j["error"] as? [String: Any])?["code"] as? String)
        }
        let tooHigh = try await ask(["min_quality": min(1, score + 0.01)])
        #expect(tooHigh.0 == 403 && tooHigh.1 == "quality_not_met", "\(tooHigh)")
        #expect(try await ask(["min_quality": score]).0 == 200)
        let card = try #require(try await ledger.models().first { $0.id == "smollm2-135m" })
        let allowed = Licenses.uses(card.license)
        for use in Licenses.Use.allCases {
            let (status, code) = try await ask(["license": [use.rawValue]])
            #expect(allowed.contains(use) ? status == 200 : (status == 403 && code == "license_not_allowed"), "\(card.license) for \(use): \(status)")
        }
        let table = try await plexus(["models", "compare", "--gateway", info.baseURL, "--api-key", apiKey])
        #expect(table.contains("smollm2-135m") && table.contains("\(recorded.correct)/16"), "\(table)")
        await up.stop()
    }
}
}
