import ArgumentParser
import Dispatch
import Foundation
import PlexusCore
import PlexusEngine

/// Prefill and decode speed of the built-in engine on a model.
struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine", abstract: "Prefill and decode tokens per second of the built-in engine.")

    @Option(name: .long, help: "Model name or .gguf path.") var model: String = "smollm2-135m"
    @Option(name: .long, help: "Prompt tokens to prefill (one batch on an empty cache).") var promptTokens: Int = 512
    @Option(name: .long, help: "Tokens to generate one at a time from an empty cache.") var generatedTokens: Int = 128
    @Option(name: .long, help: "Measured runs of each (after one warm-up).") var repetitions: Int = 3
    @Option(name: .long, help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .long, help: "Also decode this many sequences together in each step (continuous batching; 0: not measured).") var batch: Int = 0
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Result: Codable {
        var benchmark = "engine"
        var model: String
        var threads: Int
        var promptTokens: Int
        var generatedTokens: Int
        var prefillTokensPerS: Double
        var decodeTokensPerS: Double
        var peakRSSMB: Double
        var repetitions: Int
        var prefillRuns: [Double]
        var decodeRuns: [Double]
        /// With `--batch N`: aggregate tokens/s of N sequences decoded together (one row each per step).
        var batch: Int?
        var batchDecodeRuns: [Double]?
        var batchDecodeTokensPerS: Double?

        enum CodingKeys: String, CodingKey {
            case benchmark, model, threads, repetitions
            case prefillRuns = "prefill_runs"
            case decodeRuns = "decode_runs"
            case promptTokens = "prompt_tokens"
            case generatedTokens = "generated_tokens"
            case prefillTokensPerS = "prefill_tokens_per_s"
            case decodeTokensPerS = "decode_tokens_per_s"
            case peakRSSMB = "peak_rss_mb"
            case batch, batchDecodeRuns = "batch_decode_runs", batchDecodeTokensPerS = "batch_decode_tokens_per_s"
        }
    }

    func validate() throws {
        guard (1...8192).contains(promptTokens), (1...8192).contains(generatedTokens) else {
            throw ValidationError("token counts must be 1...8192")
        }
        guard (1...100).contains(repetitions) else { throw ValidationError("repetitions must be 1...100") }
        guard (1...64).contains(threads) else { throw ValidationError("threads must be 1...64") }
        guard (0...256).contains(batch) else { throw ValidationError("batch must be 0...256") }
    }

    func run() async throws {
        let path = try ModelStore(directory: store).resolve(model)
        let llm = try LlamaModel(path: path)
        // A fixed, ordinary prompt: text tokens cycled to the wanted length.
        let text = try llm.tokenizer.encode("The history of the printing press begins in the fifteenth century, when ", addBOS: false)
        let prompt = (0..<promptTokens).map { text[$0 % text.count] }
        let capacity = min(llm.config.contextLength, max(promptTokens, generatedTokens) + 1)
        // As llama-bench measures: prefill is one batch of `promptTokens` on an
        // empty cache; decode is `generatedTokens` single-token steps from an
        // empty cache, each feeding back the greedy token. One warm-up run first.
        func prefill() throws -> Double {
            let state = try InferenceState(model: llm, capacity: capacity, threads: threads)
            let t0 = DispatchTime.now().uptimeNanoseconds
            try state.forward(prompt)
            return Double(promptTokens) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        func decode(_ count: Int) throws -> Double {
            let state = try InferenceState(model: llm, capacity: capacity, threads: threads)
            var token = prompt[0]
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<count {
                let logits = try state.forward(token)
                var best = 0
                for i in 1..<logits.count where logits[i] > logits[best] { best = i }
                token = TokenID(best)
            }
            return Double(count) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        // N sequences from empty caches, each step one row of each through a shared pass.
        let pass = batch > 0 ? ForwardPass(model: llm, rowLimit: batch, maxContext: capacity, threads: threads) : nil
        func decodeBatch(_ count: Int) throws -> Double {
            guard let pass else { return 0 }
            let caches = try (0..<batch).map { _ in try KVCache(config: llm.config, capacity: capacity) }
            var tokens = (0..<batch).map { prompt[$0 % prompt.count] }
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<count {
                let out = try pass.step(zip(caches, tokens).map { .init(cache: $0, tokens: [$1], wantsLogits: true) })
                for (i, o) in out.enumerated() {
                    let logits = o.logits!
                    var best = 0
                    for j in 1..<logits.count where logits[j] > logits[best] { best = j }
                    tokens[i] = TokenID(best)
                }
            }
            return Double(count * batch) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        _ = try decode(min(16, generatedTokens))
        _ = try decodeBatch(min(16, generatedTokens))
        var pre: [Double] = [], dec: [Double] = [], bat: [Double] = []
        for _ in 0..<repetitions {
            pre.append(try prefill())
            dec.append(try decode(generatedTokens))
            if batch > 0 { bat.append(try decodeBatch(generatedTokens)) }
        }
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        var r = Result(model: path, threads: threads, promptTokens: promptTokens, generatedTokens: generatedTokens,
                       prefillTokensPerS: mean(pre), decodeTokensPerS: mean(dec), peakRSSMB: Self.peakRSSMB(),
                       repetitions: repetitions, prefillRuns: pre, decodeRuns: dec)
        if batch > 0 {
            r.batch = batch
            r.batchDecodeRuns = bat
            r.batchDecodeTokensPerS = mean(bat)
        }
        if json { try printJSON(r) } else {
            print(String(format: "prefill %.1f tok/s, decode %.1f tok/s, %d threads, peak RSS %.0f MB",
                         r.prefillTokensPerS, r.decodeTokensPerS, threads, r.peakRSSMB))
            if let b = r.batchDecodeTokensPerS { print(String(format: "decode of %d sequences together: %.1f tok/s", batch, b)) }
        }
    }

    /// VmHWM from /proc/self/status.
    static func peakRSSMB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
