import ArgumentParser
import Dispatch
import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger

/// A pipeline of shard nodes against one whole-model node of a shard's size (the same
/// threads), both through the gateway, alternating in one run: single-stream inter-token time
/// (the pipeline's extra is its hops: each token crosses gateway ↔ shard once per shard, where
/// a whole node streams its tokens without a round trip) and the aggregate tokens/s of N
/// concurrent streams (the pipeline keeps every shard busy).
struct ShardBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards", abstract: "Per-hop time and concurrent throughput of a pipeline of shards against a whole-model node.")

    @Option(name: .long, help: "Shards in the pipeline.") var shards: Int = 2
    @Option(name: .long, help: "Concurrent streams in the throughput phase.") var concurrency: Int = 4
    @Option(name: .long, help: "Tokens each stream generates at most.") var tokens: Int = 128
    @Option(name: .long, help: "Threads of every node (each shard and the whole-model node alike).") var threads: Int = 1
    @Option(name: .long, help: "Rounds (each: whole node, then pipeline, single then concurrent).") var rounds: Int = 3
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Option(name: .long, help: "Use the network described by this network.json (e.g. one whose shards sit behind emulated links) instead of starting one.")
    var network: String?
    @Flag(name: .long, help: "Single streams only (no concurrent phase).") var single = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...8).contains(shards), (1...64).contains(concurrency), (1...2_048).contains(tokens), (1...64).contains(threads), (1...20).contains(rounds) else {
            throw ValidationError("shards 1...8, concurrency 1...64, tokens 1...2048, threads 1...64, rounds 1...20")
        }
    }

    struct Round: Codable {
        var wholeItlP50Ms: Double
        var pipelineItlP50Ms: Double
        /// (pipeline − whole) / shards: what one hop adds to each token.
        var perHopMs: Double
        var wholeTokensPerS: Double
        var pipelineTokensPerS: Double
        var throughputRatio: Double
        var wholeConcurrentTokensPerS: Double
        var pipelineConcurrentTokensPerS: Double
        var concurrentRatio: Double
        /// From the services' metrics over the single pipelined stream, per step: the gateway's
        /// round trip to a shard, the shard's handling (frame in to frame out) and its engine
        /// pass; their difference is what a hop adds beyond computing.
        var exchangeMs: Double
        var shardHandlingMs: Double
        var computeMs: Double
        var addedPerHopMs: Double
        enum CodingKeys: String, CodingKey {
            case exchangeMs = "exchange_ms", shardHandlingMs = "shard_handling_ms", computeMs = "compute_ms", addedPerHopMs = "added_per_hop_ms"
            case wholeItlP50Ms = "whole_itl_p50_ms", pipelineItlP50Ms = "pipeline_itl_p50_ms", perHopMs = "per_hop_ms"
            case wholeTokensPerS = "whole_tokens_per_s", pipelineTokensPerS = "pipeline_tokens_per_s", throughputRatio = "single_ratio"
            case wholeConcurrentTokensPerS = "whole_concurrent_tokens_per_s", pipelineConcurrentTokensPerS = "pipeline_concurrent_tokens_per_s"
            case concurrentRatio = "concurrent_ratio"
        }
    }

    struct Result: Codable {
        var benchmark = "shards"
        var shards: Int
        var concurrency: Int
        var threads: Int
        var maxTokens: Int
        var rounds: [Round]
        /// Bytes of one decode step's frames per hop (request and answer), for one token.
        var bytesPerTokenPerHop: Int
        var medianPerHopMs: Double
        var medianAddedPerHopMs: Double = 0
        var medianConcurrentRatio: Double
        enum CodingKeys: String, CodingKey {
            case benchmark, shards, concurrency, threads, rounds
            case maxTokens = "max_tokens", bytesPerTokenPerHop = "bytes_per_token_per_hop", medianAddedPerHopMs = "median_added_per_hop_ms"
            case medianPerHopMs = "median_per_hop_ms", medianConcurrentRatio = "median_concurrent_ratio"
        }
    }

    func run() async throws {
        Bootstrap.tasksOnEventLoops()
        let dir = NSTemporaryDirectory() + "plexus-bench-shards-\(getpid())"
        var net: LocalNetwork?
        let info: LocalNetwork.Info
        if let network {
            info = try JSONDecoder().decode(LocalNetwork.Info.self, from: Data(contentsOf: URL(fileURLWithPath: network)))
        } else {
            let n = LocalNetwork(dir: dir, store: store, backend: "engine", nodes: 1,
                                 nodeArgs: ["--threads", String(threads), "--concurrency", String(concurrency), "--prefix-cache-mb", "0"],
                                 verifier: false, shards: shards)
            net = n
            info = try await n.start(gatewayPort: 0) { message in if !json { print(message) } }
        }
        defer {
            net?.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        guard let gateway = PlainHTTPClient.Target(url: String(info.baseURL.dropLast(3))) else { throw PlexusError(.io, "the gateway's URL is not plain http") }
        let http = PlainHTTPClient()
        let maxTokens = tokens, key = info.apiKey

        /// One stream through the gateway, by pipeline or by whole node; token arrival times.
        @Sendable func stream(_ i: Int, shards mode: String) async throws -> ServeBench.StreamTimes {
            let body = try Array(JSONSerialization.data(withJSONObject: [
                "model": LocalNetwork.model, "max_tokens": maxTokens, "temperature": 0, "stream": true,
                "messages": [["role": "user", "content": ServeBench.message(i)]], "plexus": ["shards": mode, "sort": "price"]]))
            let start = DispatchTime.now().uptimeNanoseconds
            return try await http.post(gateway, path: "/v1/chat/completions", headers: [("content-type", "application/json"), ("authorization", "Bearer \(key)")],
                                       body: body, timeout: .seconds(600)) { r in
                guard r.status == 200 else { throw PlexusError(.io, "the gateway answered \(r.status)") }
                var times: [UInt64] = []
                try await ServeBench.events(r.body) { data in
                    if data.contains("\"content\":\""), !data.contains("\"content\":\"\"") { times.append(DispatchTime.now().uptimeNanoseconds) }
                    if data.contains("\"error\"") { throw PlexusError(.io, "the stream failed: \(data.prefix(200))") }
                }
                return ServeBench.StreamTimes(start: start, tokens: times)
            }
        }

        // Warm-up: weights' pages, connections.
        let warm = single ? 1 : concurrency
        _ = try await ServeBench.load(warm) { try await stream($0, shards: "never") }
        _ = try await ServeBench.load(warm) { try await stream($0, shards: "only") }
        var result = Result(shards: info.nodes.count - 1, concurrency: concurrency, threads: threads, maxTokens: tokens, rounds: [],
                            bytesPerTokenPerHop: 0, medianPerHopMs: 0, medianConcurrentRatio: 0)
        if network == nil { result.shards = shards }
        for round in 0..<rounds {
            let w1 = try await ServeBench.load(1) { try await stream(round * 100 + $0, shards: "never") }
            let before = try await Self.timers(info)
            let p1 = try await ServeBench.load(1) { try await stream(round * 100 + $0, shards: "only") }
            let after = try await Self.timers(info)
            func mean(_ name: String) -> Double {
                let n = (after[name + "_count"] ?? 0) - (before[name + "_count"] ?? 0)
                return n > 0 ? ((after[name + "_sum"] ?? 0) - (before[name + "_sum"] ?? 0)) / n * 1000 : 0
            }
            let exchange = mean("plexus_gateway_shard_exchange_seconds"), handling = mean("plexus_shard_step_seconds"),
                compute = mean("plexus_shard_step_compute_seconds")
            let wN = single ? w1 : try await ServeBench.load(concurrency) { try await stream(round * 100 + $0, shards: "never") }
            let pN = single ? p1 : try await ServeBench.load(concurrency) { try await stream(round * 100 + $0, shards: "only") }
            func r2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
            let r = Round(wholeItlP50Ms: w1.itlP50Ms, pipelineItlP50Ms: p1.itlP50Ms, perHopMs: r2((p1.itlP50Ms - w1.itlP50Ms) / Double(result.shards)),
                          wholeTokensPerS: w1.tokensPerS, pipelineTokensPerS: p1.tokensPerS, throughputRatio: r2(p1.tokensPerS / w1.tokensPerS),
                          wholeConcurrentTokensPerS: wN.tokensPerS, pipelineConcurrentTokensPerS: pN.tokensPerS, concurrentRatio: r2(pN.tokensPerS / wN.tokensPerS),
                          exchangeMs: (exchange * 1000).rounded() / 1000, shardHandlingMs: (handling * 1000).rounded() / 1000,
                          computeMs: (compute * 1000).rounded() / 1000, addedPerHopMs: ((exchange - compute) * 1000).rounded() / 1000)
            result.rounds.append(r)
            if !json {
                print(String(format: "round %d: ITL p50 whole %.2f ms, pipeline %.2f ms (%.3f ms per hop); %d streams: whole %.1f tok/s, pipeline %.1f tok/s (×%.2f)",
                             round + 1, r.wholeItlP50Ms, r.pipelineItlP50Ms, r.perHopMs, concurrency, r.wholeConcurrentTokensPerS, r.pipelineConcurrentTokensPerS,
                             r.concurrentRatio))
                print(String(format: "         per step: gateway round trip %.3f ms, shard handling %.3f ms, engine pass %.3f ms: %.3f ms added per hop",
                             r.exchangeMs, r.shardHandlingMs, r.computeMs, r.addedPerHopMs))
            }
        }
        http.closeIdle()
        // One decode step per hop: the step frame out (a token or a state) and the answer back (a state, or the sampled piece).
        let width = try LlamaConfig(gguf: GGUFFile(path: ModelStore(directory: store).resolve(LocalNetwork.model))).embedding
        let stateFrame = 4 + 1 + 4 + 4 + 4 * width, stepFrame = 4 + 1 + 32 + 1 + 1 + 4 + 4
        result.bytesPerTokenPerHop = stepFrame + 4 * width + stateFrame
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        result.medianPerHopMs = median(result.rounds.map(\.perHopMs))
        result.medianConcurrentRatio = median(result.rounds.map(\.concurrentRatio))
        result.medianAddedPerHopMs = median(result.rounds.map(\.addedPerHopMs))
        if json { try printJSON(result) } else {
            print(String(format: "median: %.3f ms per hop by inter-token time, %.3f ms added per hop beyond the engine; %d streams ×%.2f of the whole node; %d bytes per token per hop",
                         result.medianPerHopMs, result.medianAddedPerHopMs, concurrency, result.medianConcurrentRatio, result.bytesPerTokenPerHop))
        }
    }

    /// The sums and counts of the gateway's and the shards' timers (Prometheus text), summed over the services.
    static func timers(_ info: LocalNetwork.Info) async throws -> [String: Double] {
        var out: [String: Double] = [:]
        let client = PlainHTTPClient()
        defer { client.closeIdle() }
        for url in [String(info.baseURL.dropLast(3))] + info.nodes {
            guard let target = PlainHTTPClient.Target(url: url) else { continue }
            let text: String = try await client.send(target, method: .GET, path: "/metrics", headers: [], body: [], timeout: .seconds(10)) { r in
                var bytes: [UInt8] = []
                while let piece = try await r.body.next() { bytes += piece }
                return String(decoding: bytes, as: UTF8.self)
            }
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, parts[0].hasSuffix("_sum") || parts[0].hasSuffix("_count"), let v = Double(parts[1]) else { continue }
                out[String(parts[0]), default: 0] += v
            }
        }
        return out
    }
}
