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

/// A node fronting an OpenAI-compatible server (`--upstream`).
@Suite(.serialized) struct UpstreamTests {
    static func fixture(_ name: String, file: String = #filePath) -> String {
        URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
    }

    @Test func anUpstreamNodeServesAndSettlesAndAnInterruptedUpstreamEndsWithAnError() async throws {
        let dir = try TemporaryDirectory("plexus-upstream")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        var others: [Process] = []
        var nodes: [PlexusProcess] = []
        defer {
            for p in others where p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
            for n in nodes { n.terminate() }
            up.terminate(seconds: 30)
        }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        let requestorKey = try KeyFile.read(upDir + "/keys/requestor.json")
        let echoHash = EchoBackend().modelHash.hex

        func fakeServer(_ name: String, failAfter: Int) async throws -> Int {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", Self.fixture("fake_openai_server.py"), dir.path + "/\(name).port"]
            p.environment = ProcessInfo.processInfo.environment.merging(["FAIL_AFTER": String(failAfter)]) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run()
            others.append(p)
            let until = Date().addingTimeInterval(30)
            while Date() < until {
                if let s = try? String(contentsOfFile: dir.path + "/\(name).port", encoding: .utf8), let port = Int(s) { return port }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw PlexusError(.io, "fake upstream did not start")
        }
        func upstreamNode(_ name: String, serverPort: Int) async throws -> Address {
            let key = KeyPair()
            try KeyFile.write(key, to: dir.path + "/\(name).json")
            _ = try await ledger.send(.transfer(to: key.address, amount: try .plx(150)), from: requestorKey)
            let n = try PlexusProcess(["node", "start", "--ledger", info.ledger, "--key", dir.path + "/\(name).json", "--model", "echo",
                                       "--upstream", "http://127.0.0.1:\(serverPort)", "--upstream-model", "fake", "--weights-hash", echoHash,
                                       "--price-in", "0.5", "--price-out", "0.5", "--port", "0", "--port-file", dir.path + "/\(name).nport"],
                                      logDirectory: dir.path)
            nodes.append(n)
            _ = try await PlexusProcess.waitForPort(file: dir.path + "/\(name).nport", process: n)
            let until = Date().addingTimeInterval(30)
            while try await !ledger.nodes().contains(where: { $0.nodeKey == key.address }) {
                guard Date() < until else { throw PlexusError(.io, "upstream node did not register: \(n.log)") }
                try await Task.sleep(for: .milliseconds(200))
            }
            return key.address
        }
        func ask(_ node: Address, stream: Bool, verify: String? = nil) async throws -> (Int, String, HTTPClientResponse) {
            var r = HTTPClientRequest(url: info.baseURL + "/chat/completions")
            r.method = .POST
            r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
            r.headers.add(name: "content-type", value: "application/json")
            let body: [String: Any] = ["model": "echo", "max_tokens": 16, "stream": stream,
                                       "messages": [["role": "user", "content": "hi"]],
                                       "plexus": verify.map { ["allow": [node.text], "verify": $0] } ?? ["allow": [node.text]]]
            r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
            let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(60))
            let b = try await resp.body.collect(upTo: 1 << 20)
            return (Int(resp.status.code), String(buffer: b), resp)
        }

        let good = try await upstreamNode("good", serverPort: try await fakeServer("good", failAfter: -1))
        let (status, body, resp) = try await ask(good, stream: false)
        #expect(status == 200 && body.contains("upstream says hello to the network"), "\(body)")
        #expect(resp.headers.first(name: "x-plexus-node") == good.text)
        // An upstream cannot be re-executed bit for bit: a request that asks for exact verification is not routed to it.
        let (exactStatus, exactBody, _) = try await ask(good, stream: false, verify: "exact")
        #expect(exactStatus == 503, "\(exactBody)")
        let id = try #require(resp.headers.first(name: "x-plexus-request-id"))
        // The upstream's usage is what the receipt charges for, and it settles.
        let until = Date().addingTimeInterval(60)
        while true {
            if let s = try await ledger.settlement(try Hash256(hex: id)), s.status == .final {
                #expect(s.outputTokens == [6])
                break
            }
            guard Date() < until else { Issue.record("upstream request did not settle"); break }
            try await Task.sleep(for: .milliseconds(300))
        }

        // An upstream that dies mid-answer: no continuation elsewhere; an error ends the stream.
        let bad = try await upstreamNode("bad", serverPort: try await fakeServer("bad", failAfter: 3))
        let (s2, streamed, _) = try await ask(bad, stream: true)
        #expect(s2 == 200)
        #expect(streamed.contains("stream_interrupted") && streamed.contains("upstream"), "\(streamed)")
        // The pieces sent before the cut reached the client.
        #expect(streamed.contains(#"{"content":"upstream"}"#) && streamed.contains(#"{"content":" says"}"#), "\(streamed)")
        let (s3, plain, _) = try await ask(bad, stream: false)
        #expect(s3 == 502 && plain.contains("stream_interrupted"), "\(plain)")
    }
}
