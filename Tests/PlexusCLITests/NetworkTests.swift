import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusLedger
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

    struct Streamed {
        var text = ""
        var id = ""
        var usage: [String: Any] = [:]
        var finishes = 0
    }

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
                    kill(pid, SIGKILL)
                    killed = true
                }
            }
        }
        #expect(killed, "the stream ended before the node could be killed")
        return out
    }

    @Test func aNodeKilledMidStreamIsContinuedExactlyAndChargedOnce() async throws {
        let dir = try TemporaryDirectory("plexus-net")
        defer { dir.remove() }
        let store = (try TestModels.smolLM2() as NSString).deletingLastPathComponent
        let up = try PlexusProcess(["up", "--dir", dir.path + "/up", "--port", "0", "--store", store],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let deadline = Date().addingTimeInterval(240)
        while !FileManager.default.fileExists(atPath: dir.path + "/up/network.json") {
            guard Date() < deadline, up.process.isRunning else { Issue.record("plexus up did not start: \(up.log)"); return }
            try await Task.sleep(for: .milliseconds(200))
        }
        let info = try JSONDecoder().decode(Info.self, from: Data(contentsOf: URL(fileURLWithPath: dir.path + "/up/network.json")))
        let ledger = LedgerClient(baseURL: info.ledger)
        let escrow0 = try await ledger.account(info.requestor).escrow
        let messages: [[String: Any]] = [["role": "user", "content": "Count from 1 to 60, separated by commas."]]
        let greedy: [String: Any] = ["model": "smollm2-135m", "messages": messages, "max_tokens": 160, "temperature": 0,
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
