import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire
import PlexusTestKit
import Testing

/// A whole network of real processes (`plexus up`): failover and settlement.
@Suite(.serialized) struct NetworkTests {
    struct Info: Decodable {
        var baseURL: String
        var apiKey: String
        var ledger: String
        var requestor: Address
        var nodes: [String]
        var pids: [Int32]
    }

    /// Waits for `plexus up` to write `directory/network.json`, and reads it.
    static func waitForNetwork(_ up: PlexusProcess, directory: String, seconds: Double) async throws -> Info {
        let deadline = Date().addingTimeInterval(seconds)
        while !FileManager.default.fileExists(atPath: directory + "/network.json") {
            guard Date() < deadline, up.process.isRunning else { throw PlexusError(.io, "plexus up did not start: \(up.log)") }
            try await Task.sleep(for: .milliseconds(200))
        }
        return try JSONDecoder().decode(Info.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/network.json")))
    }

    struct Streamed {
        var text = ""
        var id = ""
        var usage: [String: Any] = [:]
        var finishes = 0
    }

    /// `logit_bias` that bans the default model's end and control tokens (<|endoftext|>, <|im_start|>, <|im_end|>).
    static let noEnd: [String: Int] = ["0": -100, "1": -100, "2": -100]

    static func post(_ info: Info, _ body: [String: Any]) async throws -> (HTTPClientResponse, [String: Any]) {
        var r = HTTPClientRequest(url: info.baseURL + "/chat/completions")
        r.method = .POST
        r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
        r.headers.add(name: "content-type", value: "application/json")
        r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(300))
        let bytes = try await resp.body.collect(upTo: 1 << 24)
        return (resp, (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:])
    }

    static func get(_ info: Info, _ path: String) async throws -> [String: Any] {
        var r = HTTPClientRequest(url: info.baseURL + path)
        r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
        let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(60))
        let bytes = try await resp.body.collect(upTo: 1 << 24)
        return (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
    }

    /// Streams a chat request; after `killAfter` content chunks, kills `pid`.
    static func stream(_ info: Info, _ body: [String: Any], killAfter: Int, pid: Int32) async throws -> Streamed {
        try await stream(info, body, killAfter: killAfter) { pid }
    }

    /// Streams a chat request; after `killAfter` content chunks, kills the process `victim` names then.
    static func stream(_ info: Info, _ body: [String: Any], killAfter: Int, victim: () async throws -> Int32) async throws -> Streamed {
        var b = body
        b["stream"] = true
        b["stream_options"] = ["include_usage": true]
        var r = HTTPClientRequest(url: info.baseURL + "/chat/completions")
        r.method = .POST
        r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
        r.headers.add(name: "content-type", value: "application/json")
        r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: b)))
        let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(300))
        #expect(resp.status == .ok)
        var out = Streamed()
        out.id = resp.headers.first(name: "x-plexus-request-id") ?? ""
        var buffer = ""
        var chunks = 0
        var killed = false
        for try await part in resp.body {
            buffer += String(buffer: part)
            while let range = buffer.range(of: "\n\n") {
                let line = String(buffer[..<range.lowerBound])
                buffer.removeSubrange(..<range.upperBound)
                guard line.hasPrefix("data: ") else { continue }
                let payload = String(line.dropFirst(6))
                if payload == "[DONE]" { continue }
                let json = (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) as? [String: Any] ?? [:]
                #expect(json["error"] == nil, "stream error: \(payload)")
                if let u = json["usage"] as? [String: Any] { out.usage = u }
                for c in json["choices"] as? [[String: Any]] ?? [] {
                    if let d = c["delta"] as? [String: Any], let t = d["content"] as? String, !t.isEmpty {
                        out.text += t
                        chunks += 1
                    }
                    if c["finish_reason"] is String { out.finishes += 1 }
                }
                if chunks >= killAfter && !killed {
                    let pid = try await victim()
                    if pid > 0 { kill(pid, SIGKILL) }
                    killed = true
                }
            }
        }
        #expect(killed || killAfter == .max, "the stream ended before the node could be killed")
        return out
    }

    @Test func aNodeKilledMidStreamIsContinuedExactlyAndChargedOnce() async throws {
        let dir = try TemporaryDirectory("plexus-net")
        defer { dir.remove() }
        let store = (try TestModels.smolLM2() as NSString).deletingLastPathComponent
        let up = try PlexusProcess(["up", "--dir", dir.path + "/up", "--port", "0", "--store", store],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: dir.path + "/up", seconds: 240)
        let ledger = LedgerClient(baseURL: info.ledger)
        let escrow0 = try await ledger.account(info.requestor).escrow
        // Long answers (seconds of generation: the end-of-text tokens are banned, so every answer
        // runs to max_tokens), so that a client slowed by a loaded machine still sees the node die
        // mid-answer rather than after it has already sent everything.
        let messages: [[String: Any]] = [["role": "user", "content": "Count from 1 to 500, separated by commas."]]
        let greedy: [String: Any] = ["model": "smollm2-135m", "messages": messages, "max_tokens": 1000, "temperature": 0,
                                     "logit_bias": NetworkTests.noEnd,
                                     "plexus": ["sort": "price"]]
        func content(_ j: [String: Any]) -> String {
            (((j["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String) ?? ""
        }
        // Uninterrupted runs (any node: they all give the same tokens). The
        // seeded run uses the first seed whose answer is long enough to cut.
        let (r1, plainGreedy) = try await Self.post(info, greedy)
        var seeded = greedy
        seeded["temperature"] = 0.8
        var r2: HTTPClientResponse?, plainSeeded: [String: Any] = [:]
        for seed in 1...20 {
            seeded["seed"] = seed
            let (r, j) = try await Self.post(info, seeded)
            r2 = r
            plainSeeded = j
            if ((j["usage"] as? [String: Any])?["completion_tokens"] as? Int ?? 0) >= 40 { break }
        }
        guard let r2 else { return }
        #expect(r1.status == .ok && r2.status == .ok)
        let expectedGreedy = content(plainGreedy), expectedSeeded = content(plainSeeded)
        #expect(!expectedGreedy.isEmpty && !expectedSeeded.isEmpty)
        // pids: ledger, node-1, node-2, node-3, gateway. By price node-2 is cheapest, then node-1.
        let a = try await Self.stream(info, greedy, killAfter: 4, pid: info.pids[2])
        #expect(a.text == expectedGreedy)
        #expect(a.finishes == 1)
        let b = try await Self.stream(info, seeded, killAfter: 4, pid: info.pids[1])
        #expect(b.text == expectedSeeded)
        for s in [a, b] {
            let r = try await Self.get(info, "/receipts/\(s.id)")
            let req = r["request"] as? [String: Any] ?? [:]
            let nodes = req["nodes"] as? [Any] ?? []
            let shares = (req["outputTokens"] as? [Int]) ?? []
            #expect(nodes.count == 2, "receipt names \(nodes)")
            #expect(shares.reduce(0, +) == (s.usage["completion_tokens"] as? Int ?? -1), "\(shares) vs \(s.usage)")
            #expect((req["receipts"] as? [Any])?.count == 1)
            // Node-signed and gateway-countersigned.
            let receipts = try JSONDecoder().decode([Receipt].self, from: JSONSerialization.data(withJSONObject: req["receipts"] ?? []))
            let chainId = try await ledger.status().chainId
            for receipt in receipts { #expect(throws: Never.self) { try receipt.verify(chainId: chainId) } }
        }
        // Everything settles, each request exactly once: escrow falls by the sum of the four charges.
        var charges: [UInt64] = []
        let ids = [r1.headers.first(name: "x-plexus-request-id") ?? "", r2.headers.first(name: "x-plexus-request-id") ?? "", a.id, b.id]
        let settleBy = Date().addingTimeInterval(90)
        for id in ids {
            while true {
                let r = try await Self.get(info, "/receipts/\(id)")
                if let s = r["settlement"] as? [String: Any], s["status"] as? String == "final" {
                    charges.append(UInt64(s["charge"] as? String ?? "") ?? 0)
                    break
                }
                guard Date() < settleBy else { Issue.record("request \(id) did not settle: \(r)"); return }
                try await Task.sleep(for: .milliseconds(300))
            }
        }
        let escrow1 = try await ledger.account(info.requestor).escrow
        #expect(escrow0.units - escrow1.units == charges.reduce(0, +))
        #expect(charges.allSatisfy { $0 > 0 })
    }
}

/// Hostile requests to the gateway and to a node: clear errors, nothing charged.
@Suite(.serialized) struct NetworkHostileInputTests {
    @Test func badRequestsGetOpenAIErrorsAndCostNothing() async throws {
        let dir = try TemporaryDirectory("plexus-hostile")
        defer { dir.remove() }
        let store = (try TestModels.smolLM2() as NSString).deletingLastPathComponent
        let up = try PlexusProcess(["up", "--dir", dir.path + "/up", "--port", "0", "--store", store],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: dir.path + "/up", seconds: 240)
        let ledger = LedgerClient(baseURL: info.ledger)
        let escrow0 = try await ledger.account(info.requestor).escrow

        func send(_ raw: String, key: String? = nil, path: String = "/chat/completions") async throws -> (Int, [String: Any]) {
            var r = HTTPClientRequest(url: info.baseURL + path)
            r.method = .POST
            if let k = key ?? Optional(info.apiKey), !k.isEmpty { r.headers.add(name: "authorization", value: "Bearer \(k)") }
            r.headers.add(name: "content-type", value: "application/json")
            r.body = .bytes(ByteBuffer(string: raw))
            let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(120))
            let bytes = try await resp.body.collect(upTo: 1 << 22)
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
            return (Int(resp.status.code), json)
        }
        func expectError(_ raw: String, _ status: Int, _ code: String, key: String? = nil, path: String = "/chat/completions") async throws {
            let (s, j) = try await send(raw, key: key, path: path)
            let err = j["error"] as? [String: Any] ?? [:]
            #expect(s == status && err["code"] as? String == code && (err["message"] as? String)?.isEmpty == false,
                    "\(raw.prefix(80)): \(s) \(j)")
        }
        func chat(_ extra: String, content: String = "Hi") -> String {
            #"{"model": "smollm2-135m", "messages": [{"role": "user", "content": "\#(content)"}]\#(extra)}"#
        }
        try await expectError("{\"model\": ", 400, "invalid_json")
        try await expectError("[1, 2]", 400, "invalid_json")
        try await expectError(#"{"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}"#, 404, "model_not_found")
        try await expectError(chat(""), 401, "invalid_api_key", key: "")
        try await expectError(chat(""), 401, "invalid_api_key", key: "sk-plexus-wrong")
        try await expectError(chat(#", "temperature": 5"#), 400, "invalid_value")
        try await expectError(chat(#", "top_p": 0"#), 400, "invalid_value")
        try await expectError(chat(#", "max_tokens": 0"#), 400, "invalid_value")
        try await expectError(chat(#", "max_tokens": 100000000"#), 400, "invalid_value")
        try await expectError(chat(#", "n": 9"#), 400, "invalid_value")
        try await expectError(chat(#", "tools": [{"type": "function", "function": {"name": "f"}}]"#), 400, "unsupported_parameter")
        try await expectError(chat(#", "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "a+"}}}}}"#), 400, "unsupported_parameter")
        try await expectError(chat(#", "response_format": {"type": "yaml"}"#), 400, "invalid_value")
        try await expectError(chat(#", "stop": ["a", "b", "c", "d", "e"]"#), 400, "invalid_value")
        try await expectError(chat(#", "plexus": {"sort": "cheapest-please"}"#), 400, "invalid_value")
        try await expectError(#"{"model": "smollm2-135m", "messages": []}"#, 400, "invalid_value")
        try await expectError(#"{"model": "smollm2-135m"}"#, 400, "invalid_value", path: "/completions")
        // Beyond the context: caught at the gateway by size, or by the node by token count.
        try await expectError(chat("", content: String(repeating: "a", count: 40_000)), 400, "context_length_exceeded")
        try await expectError(chat("", content: (0..<9_000).map { String($0 % 10) }.joined(separator: " ")), 400, "context_length_exceeded")
        // A key for an account with no escrow.
        let (status, out) = try await PlexusProcess.run(["gateway", "keys", "create", "--account", KeyPair.deterministic("poor").address.text,
                                                   "--data", dir.path + "/up/gateway"], logDirectory: dir.path)
        #expect(status == 0)
        let poorKey = out.split(separator: "\n").last.map(String.init) ?? ""
        try await expectError(chat(""), 402, "insufficient_escrow", key: poorKey)

        // Nodes: no envelope, a stranger's envelope, an expired one, a replayed one.
        let gatewayKey = try KeyFile.read(dir.path + "/up/keys/gateway.json")
        let stranger = KeyPair.deterministic("stranger")
        let nodes = try await ledger.nodes().sorted { $0.endpoint < $1.endpoint }
        let node = try #require(nodes.first)
        let chainId = try await ledger.status().chainId
        let body = Array(#"{"continuation":[],"maxTokens":4,"messages":[{"content":"Hi","role":"user"}],"model":"smollm2-135m","seed":0,"stop":[],"temperature":0,"topP":1}"#.utf8)
        func envelope(_ key: KeyPair, expires: UInt64, id: String) -> String {
            var e = Envelope(requestId: Hash256.of(Array(id.utf8)), requestor: info.requestor, gateway: key.address, node: node.nodeKey,
                             bodyHash: Hash256.of(body), expiresAtMillis: expires)
            e.sign(key, chainId: chainId)
            return e.hex
        }
        func toNode(_ env: String?) async throws -> Int {
            var r = HTTPClientRequest(url: node.endpoint + "/v1/generate")
            r.method = .POST
            if let env { r.headers.add(name: "x-plexus-envelope", value: env) }
            r.body = .bytes(ByteBuffer(bytes: body))
            let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(60))
            _ = try await resp.body.collect(upTo: 1 << 20)
            return Int(resp.status.code)
        }
        let later = SystemClock().nowMillis() + 60_000
        #expect(try await toNode(nil) == 401)
        #expect(try await toNode(envelope(stranger, expires: later, id: "s")) == 403)
        #expect(try await toNode(envelope(gatewayKey, expires: SystemClock().nowMillis() - 1_000, id: "old")) == 403)
        #expect(try await toNode("zz") == 400)
        let good = envelope(gatewayKey, expires: later, id: "once")
        #expect(try await toNode(good) == 200)
        #expect(try await toNode(good) == 409)

        // None of it was charged (the direct node call has no gateway receipt to settle).
        try await Task.sleep(for: .seconds(5))
        #expect(try await ledger.account(info.requestor).escrow == escrow0)
    }
}
