import ArgumentParser
import Dispatch
import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger
import PlexusWire
import Synchronization

/// A node under concurrent load: N streams of 128 generated tokens at once against one node
/// serving the default model (its batch slots shared by every forward pass), against the
/// node's own single-stream figure and, when given, an OpenAI-compatible anchor server
/// (llama.cpp's `llama-server -np N`) driven by the same client, alternating, in one run.
struct ServeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Aggregate tokens/s, time to first token and inter-token latency of N concurrent streams on one node.")

    @Option(name: .long, help: "Concurrent streams (the node's batch slots).") var concurrency: Int = 8
    @Option(name: .long, help: "Tokens each stream generates at most.") var tokens: Int = 128
    @Option(name: .long, help: "Node threads.") var threads: Int = 2
    @Option(name: .long, help: "Tokens per batched step.") var stepTokens: Int = 32
    @Option(name: .long, help: "Rounds (each: one single stream, then N together; the anchor's after each).") var rounds: Int = 3
    @Option(name: .long, help: "An OpenAI-compatible server to measure the same way in the same run (e.g. http://127.0.0.1:8091).") var anchor: String?
    @Option(name: .long, help: "Pad each prompt to about this many tokens (long contexts, for the memory figure; 0: short prompts).") var promptTokens: Int = 0
    @Option(name: .long, help: "The node's prefix cache, MiB (0 for the throughput figures: every prompt differs anyway).") var prefixCacheMb: Int = 0
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...64).contains(concurrency), (1...2_048).contains(tokens), (1...64).contains(threads), (1...20).contains(rounds),
              (1...4_096).contains(stepTokens), (0...7_000).contains(promptTokens), (0...4_096).contains(prefixCacheMb) else {
            throw ValidationError("concurrency 1...64, tokens 1...2048, threads 1...64, rounds 1...20, step-tokens 1...4096, prompt-tokens 0...7000, prefix-cache-mb 0...4096")
        }
    }

    /// One load phase: how many streams, and what they saw.
    struct Phase: Codable {
        var streams: Int
        var tokens: Int
        var seconds: Double
        var tokensPerS: Double
        var ttftP50Ms: Double
        var ttftP99Ms: Double
        var itlP50Ms: Double
        var itlP99Ms: Double
        enum CodingKeys: String, CodingKey {
            case streams, tokens, seconds
            case tokensPerS = "tokens_per_s", ttftP50Ms = "ttft_p50_ms", ttftP99Ms = "ttft_p99_ms", itlP50Ms = "itl_p50_ms", itlP99Ms = "itl_p99_ms"
        }
    }

    struct Result: Codable {
        var benchmark = "serve"
        var model: String
        var concurrency: Int
        var threads: Int
        var stepTokens: Int
        var maxTokens: Int
        var single: [Phase]
        var concurrent: [Phase]
        /// Aggregate tokens/s with N streams over the single-stream figure, per round.
        var speedup: [Double]
        var anchor: String?
        var anchorSingle: [Phase] = []
        var anchorConcurrent: [Phase] = []
        /// Plexus's aggregate tokens/s over the anchor's, per round.
        var ratioToAnchor: [Double] = []
        var promptTokens: Int = 0
        /// The node's peak resident memory, and what it may be: GGUF + every slot's KV cache at
        /// the longest context a stream used + the prefix cache's limit + 100 MB.
        var nodePeakRSSMB: Double?
        var memoryBudgetMB: Double?
        enum CodingKeys: String, CodingKey {
            case benchmark, model, concurrency, threads, single, concurrent, speedup, anchor
            case stepTokens = "step_tokens", maxTokens = "max_tokens"
            case anchorSingle = "anchor_single", anchorConcurrent = "anchor_concurrent", ratioToAnchor = "ratio_to_anchor"
            case promptTokens = "prompt_tokens", nodePeakRSSMB = "node_peak_rss_mb", memoryBudgetMB = "memory_budget_mb"
        }
    }

    static let topics = ["the sea", "a lighthouse keeper", "the history of bread", "a journey to the mountains", "how rivers shape valleys",
                         "a robot learning to paint", "the life of bees", "an old library", "winter in a small town", "the first flight",
                         "a market at dawn", "volcanoes", "a chess tournament", "the moon", "a forest after rain", "a clockmaker"]
    static func message(_ i: Int, padTo tokens: Int = 0) -> String {
        let ask = "Write a long, detailed story about \(topics[i % topics.count])."
        guard tokens > 0 else { return ask }
        // About twelve tokens a sentence of this kind; each stream's own, so that no two share a prefix.
        let filler = (0..<(tokens / 12)).map { "Note \($0 + 1) of story \(i) is kept." }.joined(separator: " ")
        return "\(i): " + filler + " " + ask
    }

    /// Times of each token event of one stream, in nanoseconds from its start.
    struct StreamTimes { var start: UInt64; var tokens: [UInt64] }

    static func phase(_ streams: [StreamTimes], started: UInt64, ended: UInt64) -> Phase {
        let total = streams.reduce(0) { $0 + $1.tokens.count }
        let seconds = Double(ended - started) / 1e9
        let ttft = streams.compactMap { s in s.tokens.first.map { Double($0 - s.start) / 1e6 } }
        var itl: [Double] = []
        for s in streams where s.tokens.count > 1 {
            for i in 1..<s.tokens.count { itl.append(Double(s.tokens[i] - s.tokens[i - 1]) / 1e6) }
        }
        func p(_ v: [Double], _ q: Double) -> Double { v.isEmpty ? 0 : (GatewayBench.percentile(v, q) * 100).rounded() / 100 }
        return Phase(streams: streams.count, tokens: total, seconds: (seconds * 1000).rounded() / 1000,
                     tokensPerS: (Double(total) / seconds * 10).rounded() / 10,
                     ttftP50Ms: p(ttft, 0.5), ttftP99Ms: p(ttft, 0.99), itlP50Ms: p(itl, 0.5), itlP99Ms: p(itl, 0.99))
    }

    /// Reads server-sent events from `body`, calling `event` with each one's data.
    static func events(_ body: BytePipe, _ event: (Substring) throws -> Void) async throws {
        var buffer: [UInt8] = []
        while let chunk = try await body.next() {
            buffer += chunk
            while let end = buffer.indices.dropLast().first(where: { buffer[$0] == 10 && buffer[$0 + 1] == 10 }) {
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeSubrange(...(end + 1))
                for line in text.split(separator: "\n") where line.hasPrefix("data: ") { try event(line.dropFirst(6)) }
            }
        }
    }

    /// Runs `streams` requests at once through `one` and measures them.
    static func load(_ streams: Int, _ one: @escaping @Sendable (Int) async throws -> StreamTimes) async throws -> Phase {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let all = try await withThrowingTaskGroup(of: StreamTimes.self) { group in
            for i in 0..<streams { group.addTask { try await one(i) } }
            var out: [StreamTimes] = []
            for try await s in group { out.append(s) }
            return out
        }
        return phase(all, started: t0, ended: DispatchTime.now().uptimeNanoseconds)
    }

    func run() async throws {
        Bootstrap.tasksOnEventLoops()
        let dir = NSTemporaryDirectory() + "plexus-bench-serve-\(getpid())"
        let net = LocalNetwork(dir: dir, store: store, backend: "engine", nodes: 1,
                               nodeArgs: ["--threads", String(threads), "--concurrency", String(concurrency), "--step-tokens", String(stepTokens),
                                          "--prefix-cache-mb", String(prefixCacheMb)], verifier: false)
        defer {
            net.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let info = try await net.start(gatewayPort: 0) { message in if !json { print(message) } }
        let ledger = LedgerClient(baseURL: info.ledger)
        let chainId = try await ledger.status().chainId
        let gatewayKey = try KeyFile.read(dir + "/keys/gateway.json")
        guard let node = try await ledger.nodes().first, let target = PlainHTTPClient.Target(url: node.endpoint) else {
            throw PlexusError(.io, "the node did not register")
        }
        let http = PlainHTTPClient()
        let maxTokens = tokens, model = LocalNetwork.model, pad = promptTokens
        let counter = Counter()

        @Sendable func plexusStream(_ i: Int) async throws -> StreamTimes {
            let body = try Array(JSONEncoder.compact.encode(GenerateRequest(model: model, messages: [.init(role: "user", content: Self.message(i, padTo: pad))],
                                                                            maxTokens: maxTokens)))
            var e = Envelope(requestId: Hash256.of(Array("serve-bench-\(counter.next())".utf8)), requestor: info.requestor, gateway: gatewayKey.address,
                             node: node.nodeKey, bodyHash: Hash256.of(body), expiresAtMillis: SystemClock().nowMillis() + 600_000)
            e.sign(gatewayKey, chainId: chainId)
            let start = DispatchTime.now().uptimeNanoseconds
            return try await http.post(target, path: "/v1/generate", headers: [(Envelope.header, e.hex)], body: body, timeout: .seconds(600)) { r in
                guard r.status == 200 else { throw PlexusError(.io, "the node answered \(r.status)") }
                var times: [UInt64] = []
                var done = false
                try await Self.events(r.body) { data in
                    if data.contains("\"type\":\"token\"") { times.append(DispatchTime.now().uptimeNanoseconds) }
                    if data.contains("\"type\":\"done\"") {
                        done = true
                        if let r = data.range(of: "\"promptTokens\":"), let n = Int(data[r.upperBound...].prefix { $0.isNumber }) { counter.sawPrompt(n) }
                    }
                    if data.contains("\"type\":\"error\"") { throw PlexusError(.io, "the node failed: \(data.prefix(200))") }
                }
                guard done else { throw PlexusError(.io, "the stream ended without its receipt") }
                return StreamTimes(start: start, tokens: times)
            }
        }

        let anchorTarget = anchor.flatMap { PlainHTTPClient.Target(url: $0) }
        if anchor != nil && anchorTarget == nil { throw ValidationError("--anchor must be a plain http:// URL") }
        @Sendable func anchorStream(_ i: Int) async throws -> StreamTimes {
            let body = try Array(JSONSerialization.data(withJSONObject: [
                "model": model, "max_tokens": maxTokens, "temperature": 0, "stream": true,
                "messages": [["role": "user", "content": Self.message(i, padTo: pad)]]]))
            let start = DispatchTime.now().uptimeNanoseconds
            return try await http.post(anchorTarget!, path: "/v1/chat/completions", headers: [("content-type", "application/json")], body: body,
                                       timeout: .seconds(600)) { r in
                guard r.status == 200 else { throw PlexusError(.io, "the anchor answered \(r.status)") }
                var times: [UInt64] = []
                try await Self.events(r.body) { data in
                    // One event per token; the last carries the finish reason and no content.
                    if data.contains("\"content\":\""), !data.contains("\"content\":\"\"") { times.append(DispatchTime.now().uptimeNanoseconds) }
                }
                return StreamTimes(start: start, tokens: times)
            }
        }

        // Warm-up: the pages of the weights and caches, the connections.
        _ = try await Self.load(concurrency, plexusStream)
        if anchorTarget != nil { _ = try await Self.load(concurrency, anchorStream) }
        var result = Result(model: model, concurrency: concurrency, threads: threads, stepTokens: stepTokens, maxTokens: tokens,
                            single: [], concurrent: [], speedup: [], anchor: anchor)
        for round in 0..<rounds {
            let single = try await Self.load(1, plexusStream)
            let together = try await Self.load(concurrency, plexusStream)
            result.single.append(single)
            result.concurrent.append(together)
            result.speedup.append((together.tokensPerS / single.tokensPerS * 100).rounded() / 100)
            if anchorTarget != nil {
                let a1 = try await Self.load(1, anchorStream)
                let aN = try await Self.load(concurrency, anchorStream)
                result.anchorSingle.append(a1)
                result.anchorConcurrent.append(aN)
                result.ratioToAnchor.append((together.tokensPerS / aN.tokensPerS * 100).rounded() / 100)
            }
            if !json {
                print(String(format: "round %d: single %.1f tok/s, %d streams %.1f tok/s (×%.2f), TTFT p99 %.0f ms, ITL p50 %.1f ms p99 %.1f ms",
                             round + 1, single.tokensPerS, concurrency, together.tokensPerS, result.speedup.last!, together.ttftP99Ms,
                             together.itlP50Ms, together.itlP99Ms))
                if let a = result.anchorConcurrent.last {
                    print(String(format: "         anchor: single %.1f tok/s, %d streams %.1f tok/s; Plexus/anchor ×%.2f",
                                 result.anchorSingle.last!.tokensPerS, concurrency, a.tokensPerS, result.ratioToAnchor.last!))
                }
            }
        }
        http.closeIdle()
        // Memory: the node's high-water mark against what its slots, weights and cache may take.
        result.promptTokens = promptTokens
        if let pid = info.pids.dropFirst().first, let rss = Self.peakRSSMB(pid: pid) {
            let weights = try await ledger.models().first { $0.id == model }.map { _ in
                Double((try? FileManager.default.attributesOfItem(atPath: ModelStore(directory: store).resolve(model))[.size] as? Int) ?? 0)
            } ?? 0
            let c = try LlamaConfig(gguf: GGUFFile(path: ModelStore(directory: store).resolve(model)))
            // Each stream's cache holds its prompt, its output and one more position.
            let context = min(c.contextLength, counter.longestPrompt + tokens + 1)
            let kv = Double(concurrency * 4 * c.layers * c.kvDim * context)
            result.nodePeakRSSMB = (rss * 10).rounded() / 10
            result.memoryBudgetMB = ((weights + kv + Double(prefixCacheMb << 20)) / 1e6 * 10).rounded() / 10 + 100
            if !json { print(String(format: "node peak RSS %.0f MB (budget %.0f MB: %d slots at %d positions)", rss, result.memoryBudgetMB!, concurrency, context)) }
        }
        if json { try printJSON(result) }
    }

    /// VmHWM of process `pid`, in MB.
    static func peakRSSMB(pid: Int32) -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) * 1024 / 1e6
        }
        return nil
    }

    /// Numbers for request ids, unique within the run.
    final class Counter: Sendable {
        private let value = Mutex(0)
        private let prompt = Mutex(0)
        func next() -> Int { value.withLock { $0 += 1; return $0 } }
        func sawPrompt(_ n: Int) { prompt.withLock { $0 = max($0, n) } }
        var longestPrompt: Int { prompt.withLock { $0 } }
    }
}
