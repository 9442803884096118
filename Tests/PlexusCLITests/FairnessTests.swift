import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusTestKit
import PlexusWire
import Synchronization
import Testing

/// One API key flooding a gateway gets 429s with Retry-After past its limits, and
/// another key's latency stays within a bound.
@Suite(.serialized) struct FairnessTests {
    @Test func aFloodingKeyIsLimitedAndAnotherKeyStillGetsServed() async throws {
        let dir = try TemporaryDirectory("plexus-fair")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        func run(_ args: [String]) async throws -> String {
            let (status, out) = try await PlexusProcess.run(args, logDirectory: dir.path)
            #expect(status == 0, "plexus \(args.prefix(3)): \(out.suffix(800))")
            return out.split(separator: "\n").last.map(String.init) ?? ""
        }
        // A second gateway, limited: 40 requests/s (burst 40), 4 in flight per key.
        _ = try await run(["keys", "new", "--out", dir.path + "/gw.json"])
        let gwAddress = try await run(["keys", "show", "--key", dir.path + "/gw.json"])
        _ = try await run(["tx", "transfer", "--to", gwAddress, "--amount", "10", "--key", upDir + "/keys/requestor.json", "--ledger", info.ledger])
        let flooder = try await run(["gateway", "keys", "create", "--account", info.requestor.text, "--data", dir.path + "/gw"])
        let polite = try await run(["gateway", "keys", "create", "--account", info.requestor.text, "--data", dir.path + "/gw"])
        let gateway = try PlexusProcess(["gateway", "start", "--ledger", info.ledger, "--key", dir.path + "/gw.json",
                                         "--owner-key", upDir + "/keys/gateway-owner.json", "--data", dir.path + "/gw",
                                         "--port", "0", "--port-file", dir.path + "/gw.port",
                                         "--key-rps", "40", "--key-burst", "40", "--key-concurrency", "4"], logDirectory: dir.path)
        defer { gateway.terminate() }
        let port = try await PlexusProcess.waitForPort(file: dir.path + "/gw.port", seconds: 60, process: gateway)
        var a = info
        var b = info
        a.baseURL = "http://127.0.0.1:\(port)/v1"
        a.apiKey = flooder
        b.baseURL = a.baseURL
        b.apiKey = polite
        let body: [String: Any] = ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "one two three"]]]

        /// `count` sequential requests of the polite key, paced as a person or app would (25 ms apart); milliseconds each.
        func politeLatencies(_ count: Int) async throws -> [Double] {
            var out: [Double] = []
            for _ in 0..<count {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let (r, _) = try await NetworkTests.post(b, body)
                out.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                #expect(r.status == .ok)
                try await Task.sleep(for: .milliseconds(25))
            }
            return out.sorted()
        }
        _ = try await politeLatencies(10)  // warm-up
        let alone = try await politeLatencies(40)

        // The flooding key: 16 clients, each sending again as soon as it has an answer.
        final class Counts: Sendable {
            let stop = Atomic<Bool>(false), served = Atomic<Int>(0), limited = Atomic<Int>(0), withRetryAfter = Atomic<Int>(0)
        }
        let counts = Counts()
        let floodInfo = a
        let flood = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        while !counts.stop.load(ordering: .relaxed) {
                            let request: [String: Any] = ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "one two three"]]]
                            guard let (r, _) = try? await NetworkTests.post(floodInfo, request) else { continue }
                            if r.status == .ok { counts.served.add(1, ordering: .relaxed) }
                            if r.status == .tooManyRequests {
                                counts.limited.add(1, ordering: .relaxed)
                                if r.headers.first(name: "retry-after") != nil { counts.withRetryAfter.add(1, ordering: .relaxed) }
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        let flooded = try await politeLatencies(40)
        counts.stop.store(true, ordering: .relaxed)
        await flood.value
        let p50Alone = alone[alone.count / 2], p50Flooded = flooded[flooded.count / 2]
        print("fairness: polite p50 alone \(p50Alone) ms, under flood \(p50Flooded) ms; flood served \(counts.served.load(ordering: .relaxed)), limited \(counts.limited.load(ordering: .relaxed))")
        #expect(counts.limited.load(ordering: .relaxed) > 0 && counts.withRetryAfter.load(ordering: .relaxed) == counts.limited.load(ordering: .relaxed))
        // The flooding key got no more than its rate allows over the flood (plus its burst).
        #expect(counts.served.load(ordering: .relaxed) > 0)
        // The stated bound (README): the other key's median latency at most 3× its own alone, plus 30 ms.
        #expect(p50Flooded <= 3 * p50Alone + 30, "polite p50 \(p50Flooded) ms under flood vs \(p50Alone) ms alone")
    }

    /// Two gateways call one node directly (envelopes signed with their keys): one floods it,
    /// the other still gets its requests served from its fair share of the slots; a node
    /// with a per-gateway rate answers the flood 429 with Retry-After and serves no more
    /// than the rate allows.
    @Test func aGatewayFloodingANodeLeavesAnotherGatewayItsShare() async throws {
        let dir = try TemporaryDirectory("plexus-node-fair")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        let chainId = try await ledger.status().chainId
        let requestor = try KeyFile.read(upDir + "/keys/requestor.json")
        // Gateway A is the network's own; gateway B is registered here, owned by the requestor.
        let gatewayA = try KeyFile.read(upDir + "/keys/gateway.json")
        let gatewayB = KeyPair()
        _ = try await ledger.send(.registerGateway(key: gatewayB.address,
                                                   keyProof: gatewayB.sign(Registry.gatewayKeyProofBytes(chainId: chainId, owner: requestor.address))),
                                  from: requestor)
        var nodes: [PlexusProcess] = []
        defer { for n in nodes { n.terminate() } }
        /// An echo node at 20 ms a token with 4 slots and `extra` flags; its endpoint.
        func node(_ name: String, _ extra: [String]) async throws -> String {
            let key = KeyPair()
            try KeyFile.write(key, to: dir.path + "/\(name).json")
            _ = try await ledger.send(.transfer(to: key.address, amount: try .plx(150)), from: requestor)
            let n = try PlexusProcess(["node", "start", "--ledger", info.ledger, "--key", dir.path + "/\(name).json", "--model", "echo",
                                       "--backend", "echo", "--echo-token-ms", "20", "--concurrency", "4",
                                       "--price-in", "0.5", "--price-out", "0.5", "--port", "0", "--port-file", dir.path + "/\(name).port"] + extra,
                                      logDirectory: dir.path)
            nodes.append(n)
            let port = try await PlexusProcess.waitForPort(file: dir.path + "/\(name).port", process: n)
            let until = Date().addingTimeInterval(30)
            while try await !ledger.nodes().contains(where: { $0.nodeKey == key.address }) {
                guard Date() < until else { throw PlexusError(.io, "node \(name) did not register: \(n.log)") }
                try await Task.sleep(for: .milliseconds(200))
            }
            return "http://127.0.0.1:\(port)|\(key.address.text)"
        }
        let caller = NodeCaller(requestor: requestor.address, chainId: chainId)
        @Sendable func call(_ target: String, as gateway: KeyPair) async throws -> (Int, Bool) { try await caller.call(target, as: gateway) }
        final class Flood: Sendable {
            let stop = Atomic<Bool>(false), served = Atomic<Int>(0), refused = Atomic<Int>(0), withRetryAfter = Atomic<Int>(0)
        }
        /// Gateway A floods `target` with 12 callers while gateway B sends `count` requests one after another, `pause` apart.
        func flood(_ target: String, politeCount count: Int, pause: Duration) async throws -> (flood: Flood, polite: [Int], seconds: Double) {
            let f = Flood()
            let task = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<12 {
                        group.addTask {
                            while !f.stop.load(ordering: .relaxed) {
                                guard let (status, retry) = try? await call(target, as: gatewayA) else { continue }
                                if status == 200 { f.served.add(1, ordering: .relaxed) }
                                if status == 429 {
                                    f.refused.add(1, ordering: .relaxed)
                                    if retry { f.withRetryAfter.add(1, ordering: .relaxed) }
                                    try? await Task.sleep(for: .milliseconds(5))
                                }
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            let t0 = Date()
            var polite: [Int] = []
            for _ in 0..<count {
                polite.append(try await call(target, as: gatewayB).0)
                try await Task.sleep(for: pause)
            }
            let seconds = Date().timeIntervalSince(t0) + 0.5
            f.stop.store(true, ordering: .relaxed)
            await task.value
            return (f, polite, seconds)
        }

        // Fair shares alone: A fills the node, yet B (turned away while the node is still full of A's
        // work, which marks it as wanting slots) is served every time after.
        let shared = try await node("node-fair", [])
        let (f1, polite1, _) = try await flood(shared, politeCount: 20, pause: .milliseconds(50))
        print("node fairness: flood served \(f1.served.load(ordering: .relaxed)), refused \(f1.refused.load(ordering: .relaxed)); polite \(polite1)")
        #expect(f1.served.load(ordering: .relaxed) > 0 && f1.refused.load(ordering: .relaxed) > 0)
        #expect(f1.withRetryAfter.load(ordering: .relaxed) == f1.refused.load(ordering: .relaxed))
        // B may be turned away until the first of A's requests ends (its slot is then kept for B); from its first
        // request served on, every one is.
        let firstServed = polite1.firstIndex(of: 200) ?? polite1.count
        #expect(firstServed <= 5 && polite1[firstServed...].allSatisfy { $0 == 200 }, "gateway B's requests under A's flood: \(polite1)")

        // A per-gateway rate: 5 a second, burst 5.
        let limited = try await node("node-rate", ["--gateway-rps", "5", "--gateway-burst", "5"])
        let (f2, polite2, seconds) = try await flood(limited, politeCount: 12, pause: .milliseconds(250))
        let served = f2.served.load(ordering: .relaxed)
        print("node rate: flood served \(served) in \(seconds) s, refused \(f2.refused.load(ordering: .relaxed)); polite \(polite2)")
        #expect(f2.refused.load(ordering: .relaxed) > 0 && f2.withRetryAfter.load(ordering: .relaxed) == f2.refused.load(ordering: .relaxed))
        #expect(Double(served) <= 5 + 5 * (seconds + 1), "A was served \(served) in \(seconds) s at 5/s")
        let firstServed2 = polite2.firstIndex(of: 200) ?? polite2.count
        #expect(firstServed2 <= 5 && polite2[firstServed2...].allSatisfy { $0 == 200 }, "gateway B's requests under A's flood: \(polite2)")
        for n in nodes { await n.stop() }
        await up.stop()
    }
}

/// Calls a node's `/v1/generate` directly with an envelope signed by a gateway key (8 words:
/// 8 tokens, 160 ms a request on a 20 ms echo node); each call a request id of its own.
private final class NodeCaller: Sendable {
    let requestor: Address
    let chainId: String
    let counter = Atomic<Int>(0)
    static let body = Array(#"{"continuation":[],"maxTokens":8,"messages":[{"content":"one two three four five six seven eight","role":"user"}],"model":"echo","seed":0,"stop":[],"temperature":0,"topP":1}"#.utf8)

    init(requestor: Address, chainId: String) {
        self.requestor = requestor
        self.chainId = chainId
    }

    /// One request from `gateway` to `target` ("URL|node address"): its status and whether it carried Retry-After.
    func call(_ target: String, as gateway: KeyPair) async throws -> (Int, Bool) {
        let parts = target.split(separator: "|").map(String.init)
        var e = Envelope(requestId: Hash256.of(Array("fair-\(counter.add(1, ordering: .relaxed).newValue)-\(gateway.address.text)".utf8)),
                         requestor: requestor, gateway: gateway.address, node: try Address(parts[1]),
                         bodyHash: Hash256.of(Self.body), expiresAtMillis: SystemClock().nowMillis() + 60_000)
        e.sign(gateway, chainId: chainId)
        var r = HTTPClientRequest(url: parts[0] + "/v1/generate")
        r.method = .POST
        r.headers.add(name: "x-plexus-envelope", value: e.hex)
        r.body = .bytes(ByteBuffer(bytes: Self.body))
        let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(30))
        _ = try await resp.body.collect(upTo: 1 << 20)
        return (Int(resp.status.code), resp.headers.first(name: "retry-after") != nil)
    }
}
