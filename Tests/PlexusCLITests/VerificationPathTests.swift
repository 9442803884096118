import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusTestKit
import Testing

/// Spot checks and disputes through real processes: a development ledger, an engine
/// node (honest, or a drill), a gateway and verifiers. A node's first requests are all
/// checked: an honest verifier's checks pass with evidence; the lazy verifier's passes
/// without it are caught on the ledger (slashed, jailed); a cheating node's answer fails,
/// and the dispute it opens is upheld by a committee.
@Suite(.serialized) struct VerificationPathTests {
    /// A development ledger with the tiny model published, one node (with `nodeArgs`), a
    /// gateway and verifiers (name, stake, drill), each key funded with 1,000 PLX.
    final class Network: @unchecked Sendable {
        // Invariant: written only while starting, in `init`; read-only afterwards.
        let dir: TemporaryDirectory
        let env: [String: String]
        var services: [PlexusProcess] = []
        var ledgerURL = "", gatewayURL = "", apiKey = ""
        var me = Address.treasury
        var keys: [String: KeyPair] = [:]
        var ledger: LedgerClient { LedgerClient(baseURL: ledgerURL) }
        /// The model served: the tiny one unless `PLEXUS_DRILL_MODEL` names another (the tables in docs/verification.md used smollm2-135m).
        let model = ProcessInfo.processInfo.environment["PLEXUS_DRILL_MODEL"] ?? "tiny"

        /// One node per entry of `nodes` (its extra arguments), keys "node", "node-2", …
        init(ledgerParams: [String] = [], nodeArgs: [String] = [], nodes more: [[String]] = [], verifiers: [(String, String, Bool)]) async throws {
            dir = try TemporaryDirectory("plexus-verification")
            env = ["PLEXUS_HOME": dir.path + "/home"]
            do { try await start(ledgerParams: ledgerParams, nodes: [nodeArgs] + more, verifiers: verifiers) } catch { stop(); throw error }
        }

        static func nodeName(_ i: Int) -> String { i == 0 ? "node" : "node-\(i + 1)" }

        func run(_ args: [String]) async throws -> String {
            let (status, out) = try await PlexusProcess.run(args, environment: env, logDirectory: dir.path)
            #expect(status == 0, "plexus \(args.joined(separator: " ")): \(out.suffix(1_500))")
            guard status == 0 else { throw PlexusError(.io, "plexus \(args[0]) failed") }
            return out
        }

        private func start(ledgerParams: [String], nodes: [[String]], verifiers: [(String, String, Bool)]) async throws {
            let p = dir.path
            let ledgerProcess = try PlexusProcess(["ledger", "start", "--dev", "--port", "0", "--port-file", p + "/ledger.port",
                                                   "--block-interval", "50", "--heartbeat-ms", "200"] + ledgerParams.flatMap { ["--param", $0] },
                                                  environment: env, logDirectory: p)
            services.append(ledgerProcess)
            ledgerURL = "http://127.0.0.1:\(try await PlexusProcess.waitForPort(file: p + "/ledger.port", seconds: 180, process: ledgerProcess))"
            me = try KeyFile.read(p + "/home/keys/default.json").address
            for name in nodes.indices.map(Self.nodeName) + ["gateway"] + verifiers.map(\.0) {
                _ = try await run(["keys", "new", "--out", p + "/\(name).json"])
                keys[name] = try KeyFile.read(p + "/\(name).json")
                _ = try await run(["tx", "transfer", "--to", keys[name]!.address.text, "--amount", "1000", "--ledger", ledgerURL])
            }
            // The tiny model, published; or (PLEXUS_DRILL_MODEL) a model the development genesis lists, from the model store.
            let weights: String
            if model == "tiny" {
                weights = try TinyModel.write(to: p + "/tiny.gguf")
                _ = try await run(["models", "publish", weights, "--id", "tiny", "--license", "mit", "--ledger", ledgerURL])
            } else {
                weights = model
            }
            for (i, args) in nodes.enumerated() {
                let name = Self.nodeName(i)
                let node = try PlexusProcess(["node", "start", "--ledger", ledgerURL, "--key", p + "/\(name).json", "--model", model,
                                              "--weights", weights, "--price-in", "0.1", "--price-out", "0.2", "--threads", "1",
                                              "--port", "0", "--port-file", p + "/\(name).port"] + args, environment: env, logDirectory: p)
                services.append(node)
                _ = try await PlexusProcess.waitForPort(file: p + "/\(name).port", seconds: 120, process: node)
            }
            apiKey = try await run(["gateway", "keys", "create", "--account", me.text, "--data", p + "/gw"]).split(separator: "\n").last.map(String.init) ?? ""
            _ = try await run(["tx", "deposit", "--amount", "50", "--ledger", ledgerURL])
            let gateway = try PlexusProcess(["gateway", "start", "--ledger", ledgerURL, "--key", p + "/gateway.json",
                                             "--owner-key", p + "/home/keys/default.json", "--data", p + "/gw",
                                             "--port", "0", "--port-file", p + "/gw.port", "--settle-interval-ms", "200"],
                                            environment: env, logDirectory: p)
            services.append(gateway)
            gatewayURL = "http://127.0.0.1:\(try await PlexusProcess.waitForPort(file: p + "/gw.port", seconds: 60, process: gateway))"
            for (name, stake, drill) in verifiers {
                services.append(try PlexusProcess(["verifier", "start", "--ledger", ledgerURL, "--key", p + "/\(name).json", "--gateway", gatewayURL,
                                                   "--model", weights, "--stake", stake, "--threads", "1"] + (drill ? ["--adversary", "lazy"] : []),
                                                  environment: env, logDirectory: p))
            }
        }

        /// Waits until every verifier is registered.
        func verifiersRegistered(_ n: Int) async throws -> Bool {
            for _ in 0..<300 where try await ledger.verifiers().count < n { try await Task.sleep(for: .milliseconds(200)) }
            return try await ledger.verifiers().count == n
        }

        /// Sends a chat request (retrying while the gateway learns of the node); returns its id.
        func chat(_ extra: [String: Any], _ i: Int) async throws -> Hash256 {
            try await chatResponse(extra, i).id
        }

        /// As `chat`, with the response's headers.
        func chatResponse(_ extra: [String: Any], _ i: Int) async throws -> (id: Hash256, response: HTTPClientResponse) {
            let info = NetworkTests.Info(baseURL: gatewayURL + "/v1", apiKey: apiKey, ledger: ledgerURL, requestor: me, nodes: [], pids: [])
            var body: [String: Any] = ["model": model, "messages": [["role": "user", "content": "request \(i)"]]]
            body.merge(extra) { $1 }
            var answer: (HTTPClientResponse, [String: Any])?
            for _ in 0..<50 {
                answer = try await NetworkTests.post(info, body)
                if answer?.0.status == .ok { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let (response, json) = try #require(answer)
            #expect(response.status == .ok, "\(json)")
            return (try Hash256(hex: try #require(response.headers.first(name: "x-plexus-request-id"))), response)
        }

        /// Polls `id`'s verification until `done` holds (`seconds` at most).
        func await(_ id: Hash256, seconds: Int = 30, until done: (VerificationView) -> Bool) async throws -> VerificationView? {
            var v: VerificationView?
            for _ in 0..<(5 * seconds) {
                v = try await ledger.verification(id)
                if let v, done(v) { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            return v
        }

        func stop() {
            for s in services.reversed() { s.terminate() }
            dir.remove()
        }
    }

    @Test func checksPassWithEvidenceAndALazyVerifierIsCaught() async throws {
        let net = try await Network(verifiers: [("honest", "10", false), ("lazy", "100", true)])
        defer { net.stop() }
        let honest = net.keys["honest"]!.address, lazy = net.keys["lazy"]!.address
        #expect(try await net.verifiersRegistered(2))
        let bodies: [[String: Any]] = [
            // An engine node re-executes exactly: a request asking for that is routed to it.
            ["max_tokens": 8, "temperature": 0, "plexus": ["verify": "exact"]], ["max_tokens": 12, "temperature": 0.8, "seed": 7],
            ["max_tokens": 6, "temperature": 0.9, "top_p": 0.9, "top_k": 20, "seed": 3],
            // Penalties and biases are part of the sampling a verifier replays.
            ["max_tokens": 10, "temperature": 0.6, "seed": 5, "presence_penalty": 0.6, "frequency_penalty": 0.3, "logit_bias": ["65": 4], "logprobs": true],
            // So is the JSON constraint of structured output.
            ["max_tokens": 24, "temperature": 0.8, "seed": 2, "response_format": ["type": "json_object"]],
            ["max_tokens": 9, "temperature": 0.7, "min_p": 0.05, "seed": 11], ["max_tokens": 7, "temperature": 0],
        ]
        var ids: [Hash256] = []
        for (i, extra) in bodies.enumerated() {
            ids.append(try await net.chat(extra, i))
            // One at a time, so that the lazy verifier's jail shows in the later draws.
            _ = try await net.await(ids.last!) { !["undrawn", "assigned"].contains($0.check?.state ?? "undrawn") }
        }
        var states: [String: Int] = [:]
        for id in ids {
            let v = try #require(try await net.ledger.verification(id))
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
        let lazyStanding = try await net.ledger.standing(of: lazy)
        #expect(lazyStanding.jailed && lazyStanding.faults >= 1 && lazyStanding.staked.units < 100 * Amount.unitsPerPLX)
        let honestStanding = try await net.ledger.standing(of: honest)
        #expect(!honestStanding.jailed && honestStanding.verdicts >= 1 && honestStanding.reputation > 0.5)
        let status = try await net.run(["verifier", "status", "--ledger", net.ledgerURL, "--address", lazy.text])
        #expect(status.contains("jailed"), "\(status)")
    }

    /// A node that tampers with its answers: the assigned verifier's failure opens a
    /// dispute, the committee re-executes and upholds it, the node is slashed and jailed,
    /// the requestor refunded, and the jailed node gets no more traffic.
    @Test func aCheatingNodeIsSlashedJailedAndTheRequestorRefunded() async throws {
        let net = try await Network(nodeArgs: ["--adversary", "tamper"], verifiers: [("v1", "10", false), ("v2", "10", false), ("v3", "10", false)])
        defer { net.stop() }
        #expect(try await net.verifiersRegistered(3))
        let owner = net.keys["node"]!.address
        // The drill shows in the node's /health and its registration.
        let port = try String(contentsOfFile: net.dir.path + "/node.port", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health"), timeout: .seconds(10))
        #expect(String(buffer: try await health.body.collect(upTo: 1 << 16)).contains("ADVERSARY DRILL: tamper"))
        #expect(try await net.ledger.nodeRegistry().nodes.first?.offers.first?.region == "drill:tamper")
        let escrow0 = try await net.ledger.account(net.me).escrow
        let staked0 = try await net.ledger.account(owner).staked
        let id = try await net.chat(["max_tokens": 8, "temperature": 0], 0)
        let v = try #require(try await net.await(id) { $0.dispute?.outcome != nil && $0.dispute?.outcome != "open" })
        #expect(v.check?.state == "failed", "\(v)")
        let d = try #require(v.dispute)
        #expect(d.outcome == "upheld" && d.accused == owner && !d.committee.isEmpty, "\(d)")
        #expect(d.committee.allSatisfy { $0.vote == "fraud" })
        #expect(v.settlement == "refunded")
        #expect(try await net.ledger.account(net.me).escrow == escrow0)  // charged, then refunded in full
        let standing = try await net.ledger.standing(of: owner)
        #expect(standing.jailed && standing.frauds == 1 && standing.reputation == 0)
        let staked = try await net.ledger.account(owner).staked
        #expect(staked.units == staked0.units - staked0.units / 10, "slashBps 1000 of \(staked0)")
        // Jailed: the ledger lists it without traffic, and the gateway has no node for the model.
        #expect(try await net.ledger.nodes().isEmpty)
        let list = try await net.run(["disputes", "list", "--ledger", net.ledgerURL])
        #expect(list.contains("upheld"), "\(list)")
        // The gateway's record ends refunded, its receipt view showing the dispute.
        let info = NetworkTests.Info(baseURL: net.gatewayURL + "/v1", apiKey: net.apiKey, ledger: net.ledgerURL, requestor: net.me, nodes: [], pids: [])
        var view: [String: Any] = [:]
        for _ in 0..<100 {
            view = try await NetworkTests.get(info, "/receipts/\(id.hex)")
            if (view["request"] as? [String: Any])?["state"] as? String == "refunded" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect((view["request"] as? [String: Any])?["state"] as? String == "refunded", "\(view)")
        #expect(((view["verification"] as? [String: Any])?["dispute"] as? [String: Any])?["outcome"] as? String == "upheld")
    }

    /// A pipeline whose first shard alters the hidden states it sends (and signs for what it
    /// sent): the verifier re-executes the pipeline, finds that shard's sent states wrong while
    /// what the next shard received matches them, and the committee upholds fraud against the
    /// first shard only; the last shard, which sampled from the altered states, keeps its standing.
    @Test func aShardThatAltersItsStatesIsTheOneFoundAndSlashed() async throws {
        // Two shards splitting the model served (the tiny one's 2 layers, or PLEXUS_DRILL_MODEL's).
        let drill = ProcessInfo.processInfo.environment["PLEXUS_DRILL_MODEL"]
        let layers = try drill.map { try LlamaConfig(gguf: try GGUFFile(path: try ModelStore(directory: nil).resolve($0))).layers } ?? TinyModel.Shape().layers
        let half = layers / 2
        let net = try await Network(nodeArgs: ["--layers", "0-\(half)", "--adversary", "tamper"], nodes: [["--layers", "\(half)-\(layers)"]],
                              verifiers: [("v1", "10", false), ("v2", "10", false), ("v3", "10", false)])
        defer { net.stop() }
        #expect(try await net.verifiersRegistered(3))
        for _ in 0..<100 where try await net.ledger.nodes().count < 2 { try await Task.sleep(for: .milliseconds(200)) }
        let cheat = net.keys["node"]!.address, honest = net.keys["node-2"]!.address
        let escrow0 = try await net.ledger.account(net.me).escrow
        let staked0 = try await net.ledger.account(cheat).staked
        let (id, response) = try await net.chatResponse(["max_tokens": 8, "temperature": 0, "plexus": ["shards": "only"]], 0)
        #expect(response.status == .ok)
        let v = try #require(try await net.await(id) { $0.dispute?.outcome != nil && $0.dispute?.outcome != "open" })
        #expect(v.check?.state == "failed", "\(v)")
        let d = try #require(v.dispute)
        #expect(d.outcome == "upheld" && d.accused == cheat && d.share == 0 && !d.committee.isEmpty, "\(d)")
        #expect(v.settlement == "refunded")
        #expect(try await net.ledger.account(net.me).escrow == escrow0)
        let standing = try await net.ledger.standing(of: cheat)
        #expect(standing.jailed && standing.frauds == 1)
        #expect(try await net.ledger.account(cheat).staked.units < staked0.units)
        let other = try await net.ledger.standing(of: honest)
        #expect(!other.jailed && other.frauds == 0)
    }

    /// Every drill is caught on every request where it deviates, and honest requests pass,
    /// with the node and the verifier on different kernel paths (`plexus bench detect`).
    @Test func everyDrillIsCaughtAndHonestWorkPasses() async throws {
        let dir = try TemporaryDirectory("plexus-detect")
        defer { dir.remove() }
        let named = ProcessInfo.processInfo.environment["PLEXUS_DRILL_MODEL"]
        let weights = try named ?? TinyModel.write(to: dir.path + "/tiny.gguf")
        // Fewer on a real model: one side of every request runs the slow portable kernels.
        let (drills, honest) = named == nil ? (8, 30) : (3, 12)
        let (status, out) = try await PlexusProcess.run(["bench", "detect", "--model", weights, "--requests", "\(drills)", "--honest", "\(honest)",
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
                #expect(n == honest && failed == 0 && (row["continued"] as? Int ?? 0) > 0)
                #expect((row["kernel_pairs"] as? [String: Int])?.keys.allSatisfy { k in k.split(separator: "→").count == 2 } == true)
            } else {
                #expect(n == drills && failed == n - identical, "\(mode): \(row)")
                // Only a wrong seed can draw the honest answer, and not often.
                #expect(mode == "wrong-seed" ? identical <= 2 : identical == 0, "\(mode): \(row)")
            }
        }
    }

    /// Requests per drill on the ledger (`PLEXUS_DRILL_REQUESTS`; the table in docs/verification.md used 100).
    static let drillRequests = Int(ProcessInfo.processInfo.environment["PLEXUS_DRILL_REQUESTS"] ?? "") ?? 6

    /// Every drill, through real processes with every request checked: each request fails
    /// its check, each dispute is upheld by the committee, each requestor is refunded, and
    /// the node ends slashed and jailed.
    /// Every mode in the run on the default model (`.ci/run`, release build); two in the debug suite,
    /// whose parallel tests the seven networks would crowd.
    static let drillModes = ProcessInfo.processInfo.environment["PLEXUS_DRILL_MODEL"] == nil
        ? ["tamper", "quant-swap"] : ["quant-swap", "layer-skip", "wrong-seed", "tamper", "random", "replay", "bad-commitment"]

    @Test(arguments: drillModes)
    func everyDrillIsCaughtOnTheLedger(mode: String) async throws {
        let n = Self.drillRequests
        // Many requests queue up at the verifiers: give verdicts and votes room (blocks come every 200 ms).
        let windows = n > 10 ? ["challengeWindowBlocks=400", "verdictDeadlineBlocks=250", "disputeCommitBlocks=300", "disputeRevealBlocks=100", "unbondingBlocks=1000"]
                             : ["challengeWindowBlocks=60", "verdictDeadlineBlocks=40", "disputeCommitBlocks=20", "disputeRevealBlocks=10"]
        let net = try await Network(ledgerParams: ["verifySampleBps=10000"] + windows,
                              nodeArgs: ["--adversary", mode, "--concurrency", "4"],
                              verifiers: [("v1", "10", false), ("v2", "10", false), ("v3", "10", false)])
        defer { net.stop() }
        #expect(try await net.verifiersRegistered(3))
        let owner = net.keys["node"]!.address
        let escrow0 = try await net.ledger.account(net.me).escrow
        let staked0 = try await net.ledger.account(owner).staked
        // Greedy and seeded sampling, mixed parameters (a wrong seed only shows when sampling).
        @Sendable func body(_ i: Int) -> [String: Any] {
            let sampled = mode == "wrong-seed" || i % 2 == 1
            var b: [String: Any] = ["max_tokens": 8 + i % 9, "temperature": sampled ? 0.9 : 0, "seed": i + 1]
            if sampled { b[["top_p", "top_k", "min_p", "frequency_penalty"][i % 4]] = [0.9, 30, 0.05, 0.4][i % 4] }
            return b
        }
        // All sent before the first dispute can be decided, four at a time.
        var ids: [Hash256] = []
        for start in stride(from: 0, to: n, by: 4) {
            try await withThrowingTaskGroup(of: Hash256.self) { group in
                for i in start..<min(n, start + 4) { group.addTask { try await net.chat(body(i), i) } }
                for try await id in group { ids.append(id) }
            }
        }
        var failed = 0, upheld = 0, refunded = 0
        for id in ids {
            let v = try await net.await(id, seconds: n > 10 ? 600 : 30) { ($0.dispute?.outcome ?? "open") != "open" || $0.check?.state == "passed" }
            if v?.check?.state == "failed" { failed += 1 }
            if v?.dispute?.outcome == "upheld" { upheld += 1 }
            if v?.settlement == "refunded" { refunded += 1 }
        }
        let standing = try await net.ledger.standing(of: owner)
        let staked = try await net.ledger.account(owner).staked
        print("DRILL \(mode): requests \(n), failed \(failed), upheld \(upheld), refunded \(refunded), slashed \(staked0.units - staked.units) units, jailed \(standing.jailed)")
        #expect(failed == n && upheld == n && refunded == n, "\(mode): \(failed) failed, \(upheld) upheld, \(refunded) refunded of \(n)")
        #expect(standing.jailed && standing.frauds == UInt64(n) && standing.reputation == 0)
        #expect(staked.units < staked0.units)
        #expect(try await net.ledger.account(net.me).escrow == escrow0)
        let metrics = try await HTTPClient.shared.execute(HTTPClientRequest(url: net.ledgerURL + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
        #expect(text.contains("plexus_disputes{outcome=\"upheld\"} \(n)") && text.contains("plexus_checks{state=\"failed\"} \(n)"), "\(text.suffix(800))")
    }

    /// `"redundancy": 2` on an honest node and a tampering one: the copies disagree, the
    /// gateway challenges both, the committee upholds fraud against the cheat and rejects the
    /// challenge of the honest node (which is paid, and gets the gateway's bond). On two
    /// honest nodes the copies agree and both are paid.
    @Test func redundantCopiesThatDisagreeAreChallengedAndTheCheatIsFound() async throws {
        let net = try await Network(nodes: [["--adversary", "tamper"], []], verifiers: [("v1", "10", false), ("v2", "10", false), ("v3", "10", false)])
        defer { net.stop() }
        #expect(try await net.verifiersRegistered(3))
        for _ in 0..<100 where try await net.ledger.nodes().count < 3 { try await Task.sleep(for: .milliseconds(200)) }
        let honest = net.keys["node"]!.address, cheat = net.keys["node-2"]!.address, other = net.keys["node-3"]!.address
        func nodeKey(_ owner: Address) async throws -> String { try await net.ledger.nodes().first { $0.owner == owner }!.nodeKey.text }
        let (honestKey, cheatKey, otherKey) = try await (nodeKey(honest), nodeKey(cheat), nodeKey(other))
        // Two honest nodes: the copies agree, and each is settled on its own.
        let pair = try await net.chatResponse(["max_tokens": 8, "temperature": 0.8, "seed": 5,
                                               "plexus": ["redundancy": 2, "allow": [honestKey, otherKey]]], 100)
        #expect(pair.response.headers.first(name: "x-plexus-redundancy") == "agreed")
        let pairCopy = try Hash256(hex: try #require(pair.response.headers.first(name: "x-plexus-copies")))
        for rid in [pair.id, pairCopy] {
            let v = try await net.await(rid) { $0.settlement == "final" }
            #expect(v?.settlement == "final" && v?.dispute == nil, "\(String(describing: v))")
        }
        var answer: (id: Hash256, response: HTTPClientResponse)?
        for i in 0..<20 {
            answer = try await net.chatResponse(["max_tokens": 8, "temperature": 0, "plexus": ["redundancy": 2, "allow": [honestKey, cheatKey]]], i)
            if answer?.response.headers.first(name: "x-plexus-redundancy") != nil { break }
            try await Task.sleep(for: .milliseconds(300))  // until the gateway knows both nodes
        }
        let (id, response) = try #require(answer)
        #expect(response.headers.first(name: "x-plexus-redundancy") == "disagreed")
        let copy = try Hash256(hex: try #require(response.headers.first(name: "x-plexus-copies")))
        var outcomes: [Address: String] = [:]
        for rid in [id, copy] {
            let v = try #require(try await net.await(rid) { ($0.dispute?.outcome ?? "open") != "open" })
            let d = try #require(v.dispute, "the gateway challenged \(rid.hex.prefix(16))")
            outcomes[d.accused] = d.outcome
        }
        #expect(outcomes[cheat] == "upheld" && outcomes[honest] == "rejected", "\(outcomes)")
        #expect(try await net.ledger.standing(of: cheat).jailed)
        #expect(try await !net.ledger.standing(of: honest).jailed)
    }
}
