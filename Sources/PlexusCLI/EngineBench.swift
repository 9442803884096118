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
    @Option(name: .long, help: "Prompt tokens to prefill.") var promptTokens: Int = 128
    @Option(name: .long, help: "Tokens to generate.") var generatedTokens: Int = 64
    @Option(name: .long, help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
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

        enum CodingKeys: String, CodingKey {
            case benchmark, model, threads
            case promptTokens = "prompt_tokens"
            case generatedTokens = "generated_tokens"
            case prefillTokensPerS = "prefill_tokens_per_s"
            case decodeTokensPerS = "decode_tokens_per_s"
            case peakRSSMB = "peak_rss_mb"
        }
    }

    func validate() throws {
        guard (1...8192).contains(promptTokens), (1...8192).contains(generatedTokens) else {
            throw ValidationError("token counts must be 1...8192")
        }
    }

    func run() async throws {
        let path = try ModelStore(directory: store).resolve(model)
        let llm = try LlamaModel(path: path)
        let state = try InferenceState(model: llm, capacity: min(llm.config.contextLength, promptTokens + generatedTokens + 1), threads: threads)
        // A fixed, ordinary prompt: text tokens cycled to the wanted length.
        let text = try llm.tokenizer.encode("The history of the printing press begins in the fifteenth century, when ", addBOS: false)
        let prompt = (0..<promptTokens).map { text[$0 % text.count] }
        let t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try state.forward(prompt)
        let t1 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<generatedTokens {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            logits = try state.forward(TokenID(best))
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        let r = Result(model: path, threads: threads, promptTokens: promptTokens, generatedTokens: generatedTokens,
                       prefillTokensPerS: Double(promptTokens) / (Double(t1 - t0) / 1e9),
                       decodeTokensPerS: Double(generatedTokens) / (Double(t2 - t1) / 1e9),
                       peakRSSMB: Self.peakRSSMB())
        if json { try printJSON(r) } else {
            print(String(format: "prefill %.1f tok/s, decode %.1f tok/s, %d threads, peak RSS %.0f MB",
                         r.prefillTokensPerS, r.decodeTokensPerS, threads, r.peakRSSMB))
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
