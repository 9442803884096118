import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// The README's operator path with nothing but the command line: a development
/// ledger, a model published, a node and a gateway started by hand, an API key,
/// a deposit, a chat request and its settlement.
@Suite(.serialized) struct OperatorPathTests {
    @Test func anOperatorBuildsANetworkWithTheCommandLine() async throws {
        let dir = try TemporaryDirectory("plexus-operator")
        defer { dir.remove() }
        let env = ["PLEXUS_HOME": dir.path + "/home"]
        func run(_ args: [String]) async throws -> String {
            let (status, out) = try await PlexusProcess.run(args, environment: env, logDirectory: dir.path)
            #expect(status == 0, "plexus \(args.joined(separator: " ")): \(out.suffix(1_500))")
            guard status == 0 else { throw PlexusError(.io, "plexus \(args[0]) failed") }
            return out
        }
        var services: [PlexusProcess] = []
        defer { for s in services.reversed() { s.terminate() } }

        let ledgerProcess = try PlexusProcess(["ledger", "start", "--dev", "--port", "0", "--port-file", dir.path + "/ledger.port",
                                               "--block-interval", "50", "--heartbeat-ms", "200",
                                               // A challenge window of 5 s: the transcript is read (and kept) well before it closes,
                                               // even on a loaded machine (the default 20 blocks were 1 s).
                                               "--param", "challengeWindowBlocks=100", "--param", "unbondingBlocks=200"], environment: env, logDirectory: dir.path)
        services.append(ledgerProcess)
        let ledgerURL = "http://127.0.0.1:\(try await PlexusProcess.waitForPort(file: dir.path + "/ledger.port", seconds: 180, process: ledgerProcess))"
        let ledger = LedgerClient(baseURL: ledgerURL)
        // The development genesis lists the default model.
        #expect(try await ledger.models().map(\.id) == ["smollm2-135m"])

        let me = try KeyFile.read(dir.path + "/home/keys/default.json").address
        for name in ["node", "gateway"] { _ = try await run(["keys", "new", "--out", dir.path + "/\(name).json"]) }
        let nodeKey = try KeyFile.read(dir.path + "/node.json"), gatewayKey = try KeyFile.read(dir.path + "/gateway.json")
        _ = try await run(["tx", "transfer", "--to", nodeKey.address.text, "--amount", "1000", "--ledger", ledgerURL])
        _ = try await run(["tx", "transfer", "--to", gatewayKey.address.text, "--amount", "10", "--ledger", ledgerURL])

        let weights = try TinyModel.write(to: dir.path + "/tiny.gguf")
        let published = try await run(["models", "publish", weights, "--id", "tiny", "--license", "mit", "--royalty-bps", "300", "--ledger", ledgerURL])
        #expect(published.contains("registered tiny"))
        let card = try #require(try await ledger.models().first { $0.id == "tiny" })
        #expect(card.creator == me && card.royaltyBps == 300 && card.architecture == "llama" && card.contextLength == 256)
        // A second publication of the same id is refused by the ledger.
        let (again, _) = try await PlexusProcess.run(["models", "publish", weights, "--id", "tiny", "--license", "mit", "--ledger", ledgerURL],
                                               environment: env, logDirectory: dir.path)
        #expect(again != 0)

        let node = try PlexusProcess(["node", "start", "--ledger", ledgerURL, "--key", dir.path + "/node.json", "--model", "tiny",
                                      "--weights", weights, "--price-in", "0.1", "--price-out", "0.2", "--threads", "1",
                                      "--port", "0", "--port-file", dir.path + "/node.port"], environment: env, logDirectory: dir.path)
        services.append(node)
        _ = try await PlexusProcess.waitForPort(file: dir.path + "/node.port", seconds: 120, process: node)

        let apiKey = try await run(["gateway", "keys", "create", "--account", me.text, "--data", dir.path + "/gw"])
            .split(separator: "\n").last.map(String.init) ?? ""
        _ = try await run(["tx", "deposit", "--amount", "5", "--ledger", ledgerURL])
        let gateway = try PlexusProcess(["gateway", "start", "--ledger", ledgerURL, "--key", dir.path + "/gateway.json",
                                         "--owner-key", dir.path + "/home/keys/default.json", "--data", dir.path + "/gw",
                                         "--port", "0", "--port-file", dir.path + "/gw.port",
                                         // Settles 3 s after the answer, so that the transcript is read well within its challenge window.
                                         "--settle-interval-ms", "3000"],
                                        environment: env, logDirectory: dir.path)
        services.append(gateway)
        let port = try await PlexusProcess.waitForPort(file: dir.path + "/gw.port", seconds: 60, process: gateway)

        let info = NetworkTests.Info(baseURL: "http://127.0.0.1:\(port)/v1", apiKey: apiKey, ledger: ledgerURL, requestor: me,
                                     nodes: [], pids: [])
        var answer: (HTTPClientResponse, [String: Any])?
        // The gateway learns of the node from the ledger: give it a moment.
        for _ in 0..<50 {
            answer = try await NetworkTests.post(info, ["model": "tiny", "max_tokens": 8, "temperature": 0,
                                                        "messages": [["role": "user", "content": "hello"]]])
            if answer?.0.status == .ok { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let (response, body) = try #require(answer)
        #expect(response.status == .ok, "\(body)")
        let requestId = try Hash256(hex: try #require(response.headers.first(name: "x-plexus-request-id")))
        #expect(((body["usage"] as? [String: Any])?["completion_tokens"] as? Int ?? 0) > 0)

        // The requestor reads the transcript; `plexus verify` reproduces it exactly, and a
        // transcript with one output token changed fails.
        let transcript = try await NetworkTests.get(info, "/receipts/\(requestId.hex)/transcript")
        if (transcript["output_tokens"] as? [Int])?.count != (body["usage"] as? [String: Any])?["completion_tokens"] as? Int {
            // What the gateway and the ledger say of the request, to tell why its transcript went.
            let record = try await NetworkTests.get(info, "/receipts/\(requestId.hex)")
            Issue.record("transcript answer: \(transcript); the gateway's record: \(record); the ledger's settlement: \(String(describing: try await ledger.settlement(requestId))); ledger height \(try await ledger.status().height)")
        }
        // Nobody else may read it.
        let otherKey = try await run(["gateway", "keys", "create", "--account", nodeKey.address.text, "--data", dir.path + "/gw"])
            .split(separator: "\n").last.map(String.init) ?? ""
        var other = info
        other.apiKey = otherKey
        let refused = try await NetworkTests.get(other, "/receipts/\(requestId.hex)/transcript")
        #expect((refused["error"] as? [String: Any])?["code"] as? String == "forbidden", "\(refused)")
        let file = dir.path + "/transcript.json"
        try JSONSerialization.data(withJSONObject: transcript).write(to: URL(fileURLWithPath: file))
        let verified = try await run(["verify", "--transcript", file, "--model", weights, "--json"])
        #expect(verified.contains("\"ok\" : true"), "\(verified)")
        var forged = transcript
        var tokens = try #require(transcript["output_tokens"] as? [Int])
        tokens[0] = tokens[0] == 100 ? 101 : 100
        forged["output_tokens"] = tokens
        try JSONSerialization.data(withJSONObject: forged).write(to: URL(fileURLWithPath: file))
        let (status, out) = try await PlexusProcess.run(["verify", "--transcript", file, "--model", weights, "--json"], environment: env, logDirectory: dir.path)
        #expect(status == 1 && out.contains("\"ok\" : false"), "\(out)")

        // Settled on the ledger and paid out after the challenge window.
        var settlement: Settlement?
        for _ in 0..<300 {
            settlement = try await ledger.settlement(requestId)
            if settlement?.status == .final { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(settlement?.status == .final, "\(String(describing: settlement))")
        #expect(settlement?.nodes == [nodeKey.address])
        // The model's creator (the publisher) is paid its royalty.
        #expect(settlement?.payouts.contains { $0.account == me && !$0.amount.isZero } == true)
        // Once final, the transcript is no longer kept.
        var gone = false
        for _ in 0..<100 {
            gone = (try await NetworkTests.get(info, "/receipts/\(requestId.hex)/transcript")["error"] as? [String: Any])?["code"] as? String == "transcript_gone"
            if gone { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(gone)
    }
}
