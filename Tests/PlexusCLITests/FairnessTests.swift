import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusTestKit
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
}
