import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// The default model served as a pipeline of shard processes (`plexus up --shards 3
/// --shard-replicas 2 --full-nodes`): pipelined answers equal whole-model answers, streamed
/// and not, greedy and seeded; a shard killed mid-stream (first, middle, last in turn) is
/// replaced and the stream ends with the uninterrupted tokens; every serving shard signs a
/// receipt and settlement pays each to the base unit.
@Suite(.serialized) struct ShardNetworkTests {
    static func content(_ j: [String: Any]) -> String {
        (((j["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String) ?? ""
    }

    @Test func pipelinesAnswerAsWholeNodesAndSurviveKilledShards() async throws {
        let dir = try TemporaryDirectory("plexus-shards")
        defer { dir.remove() }
        let store = (try TestModels.smolLM2() as NSString).deletingLastPathComponent
        let up = try PlexusProcess(["up", "--dir", dir.path + "/up", "--port", "0", "--store", store, "--shards", "3", "--shard-replicas", "2", "--full-nodes"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: dir.path + "/up", seconds: 300)
        let ledger = LedgerClient(baseURL: info.ledger)
        // Nodes 1-3 serve the whole model; 4-9 are shards: two each of layers 0-10, 10-20, 20-30.
        #expect(info.nodes.count == 9)
        let messages: [[String: Any]] = [["role": "user", "content": "Count from 1 to 500, separated by commas."]]
        // The end-of-text tokens banned: every greedy answer runs to its max_tokens.
        let greedy: [String: Any] = ["model": "smollm2-135m", "messages": messages, "max_tokens": 240, "temperature": 0, "logit_bias": NetworkTests.noEnd]
        var seeded = greedy
        seeded["temperature"] = 0.8
        seeded["seed"] = 11
        seeded["max_tokens"] = 48
        seeded["logit_bias"] = nil
        func with(_ body: [String: Any], shards: String) -> [String: Any] {
            var b = body
            b["plexus"] = ["shards": shards]
            return b
        }
        // Pipelined and whole-model answers, whole and streamed.
        var expected: [String] = []
        for body in [greedy, seeded] {
            let (r1, whole) = try await NetworkTests.post(info, with(body, shards: "never"))
            let (r2, piped) = try await NetworkTests.post(info, with(body, shards: "only"))
            #expect(r1.status == .ok && r2.status == .ok)
            #expect(!Self.content(whole).isEmpty)
            #expect(Self.content(piped) == Self.content(whole))
            expected.append(Self.content(whole))
            let receipts = try await Self.receipts(info, r2.headers.first(name: "x-plexus-request-id") ?? "")
            #expect(receipts.map { $0.shard?.layers.description } == ["0-10", "10-20", "20-30"])
        }
        let streamed = try await NetworkTests.stream(info, with(seeded, shards: "only"), killAfter: .max) { 0 }
        #expect(streamed.text == expected[1])

        // A serving shard of each span in turn killed mid-stream. Long answers (1,000 tokens, some
        // seconds of generation), so that a test process starved on a loaded machine, reading its
        // stream late, still kills the shard while the pipeline is generating, not after it closed.
        var long = greedy
        long["max_tokens"] = 1000
        let (rLong, wholeLong) = try await NetworkTests.post(info, with(long, shards: "never"))
        #expect(rLong.status == .ok)
        let expectedLong = Self.content(wholeLong)
        var killed: Set<Int32> = []
        defer { #expect(killed.count == 3) }
        var ids: [String] = []
        for span in 0..<3 {
            var victim: (pid: Int32, key: String)?
            let s = try await NetworkTests.stream(info, with(long, shards: "only"), killAfter: 4) {
                // The replica of this span holding the request's sequence.
                for r in 0..<2 {
                    let node = 3 + span * 2 + r
                    if let h = try? await Self.health(info.nodes[node]), (h["openSequences"] as? Int ?? 0) > 0 {
                        victim = (info.pids[1 + node], h["node"] as? String ?? "")
                        return info.pids[1 + node]
                    }
                }
                Issue.record("no shard of span \(span) held the sequence")
                return 0
            }
            let v = try #require(victim)
            killed.insert(v.pid)
            print("shards: killed shard pid \(v.pid) of span \(span) mid-stream; \(s.usage["completion_tokens"] ?? "?") tokens, \(s.text.count) characters")
            #expect(s.text == expectedLong, "span \(span): the stream's text differs after the shard was killed")
            #expect(s.finishes == 1)
            ids.append(s.id)
            let receipts = try await Self.receipts(info, s.id)
            #expect(receipts.map { $0.shard?.layers.description } == ["0-10", "10-20", "20-30"])
            #expect(!receipts.contains { $0.node.text == v.key }, "the killed shard cannot have signed")
            #expect(receipts.last.map { $0.firstOutputToken + $0.outputTokens } == UInt64(s.usage["completion_tokens"] as? Int ?? -1))
        }
        // The ledger's placement view, and a clear 503 when the policy leaves a span without a shard.
        let (status, out) = try await PlexusProcess.run(["shards", "show", "smollm2-135m", "--ledger", info.ledger], logDirectory: dir.path)
        #expect(status == 0 && out.contains("3 whole-model nodes; shards of 3 spans over 30 layers; a pipeline can be built"), "\(out)")
        #expect(out.contains("layers 10-20 of 30: 2 operators"), "\(out)")
        let registered = try await ledger.nodes()
        let middle = [5, 6].compactMap { i in registered.first { $0.endpoint == info.nodes[i] }?.nodeKey.text }
        #expect(middle.count == 2)
        var denied = with(greedy, shards: "only")
        denied["plexus"] = ["shards": "only", "deny": middle]
        let (r503, e503) = try await NetworkTests.post(info, denied)
        #expect(r503.status == .serviceUnavailable)
        let message = (e503["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(message.contains("shards of 3 spans over 30 layers"), "\(e503)")

        // Each settles once, paying every shard that signed its share, to the base unit.
        for id in ids {
            let rid = try Hash256(hex: id)
            var settled: Settlement?
            for _ in 0..<300 {
                settled = try await ledger.settlement(rid)
                if settled != nil { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let s = try #require(settled)
            let receipts = try await Self.receipts(info, id)
            let charge = try receipts.reduce(Amount.zero) { try $0.adding(try $1.cost()) }
            #expect(s.charge == charge)
            #expect(s.nodes == receipts.map(\.node))
            let paid = try s.payouts.reduce(s.fee) { try $0.adding($1.amount) }
            #expect(paid == s.charge)
            #expect(s.payouts.count == receipts.count + 1)  // each shard, and the model's creator
        }
    }

    /// scripts/netem_shards.sh: shards in network namespaces of their own behind delayed links
    /// (netem, or the delay line where the kernel has none). Every hop costs its round trip:
    /// at 5 ms each way, a token through two shards takes at least 2 × 10 ms more.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")))
    func shardsBehindDelayedLinksPayTheirRoundTrips() async throws {
        let models = (try TestModels.smolLM2() as NSString).deletingLastPathComponent
        var root = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) { root.deleteLastPathComponent() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root.appendingPathComponent("scripts/netem_shards.sh").path]
        var env = ProcessInfo.processInfo.environment
        env["PLEXUS"] = try PlexusProcess.binaryPath()
        env["PLEXUS_MODELS"] = models
        env["DELAYS"] = "0 5"
        env["TOKENS"] = "16"
        env["SHARDS"] = "2"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        let err = Pipe()
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(300)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(log.suffix(2_000))")
        let rows = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        print("netem: \(text)")
        try #require(rows.count == 2, "\(text) \(log.suffix(2_000))")
        let itl = rows.map { $0["pipeline_itl_p50_ms"] as? Double ?? 0 }
        #expect(itl[0] > 0 && itl[1] >= 20, "\(rows)")
        #expect(itl[1] > itl[0])
        #expect(rows.allSatisfy { ($0["bytes_per_token_per_hop"] as? Int ?? 0) > 0 && $0["hops"] as? Int == 2 })
    }

    static func health(_ url: String) async throws -> [String: Any] {
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/health"), timeout: .seconds(5))
        let body = try await r.body.collect(upTo: 1 << 16)
        return (try JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }

    static func receipts(_ info: NetworkTests.Info, _ id: String) async throws -> [Receipt] {
        let r = try await NetworkTests.get(info, "/receipts/\(id)")
        let req = r["request"] as? [String: Any] ?? [:]
        return try JSONDecoder().decode([Receipt].self, from: JSONSerialization.data(withJSONObject: req["receipts"] ?? []))
    }
}
