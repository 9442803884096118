import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine

/// What verification costs against generation: the CPU time of one exact replay of a
/// request against the CPU time the node spent generating it.
struct VerifyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "CPU time of verifying a request by exact replay against generating it.")

    @Option(name: .long, help: "Model name or .gguf path.") var model: String = "smollm2-135m"
    @Option(name: .long, help: "Prompt tokens.") var promptTokens: Int = 64
    @Option(name: .long, help: "Output tokens asked for.") var outputTokens: Int = 128
    @Option(name: .long, help: "Sampling temperature of the request (0: greedy).") var temperature: Double = 0.8
    @Option(name: .long, help: "Threads, for the node and the verifier alike.") var threads: Int = 2
    @Option(name: .long, help: "Measured pairs (generate, then verify), after one warm-up.") var repetitions: Int = 3
    @Option(name: .long, help: "Share of requests verified, in basis points (the spot-check rate).") var sampleBps: Int = 500
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Result: Codable {
        var benchmark = "verify"
        var model: String
        var threads: Int
        var promptTokens: Int
        var outputTokens: Int
        var generateCPUSeconds: [Double]
        var verifyCPUSeconds: [Double]
        var verifyToGenerateRatio: Double
        var sampleBps: Int
        var amortizedPercent: Double
        var commitmentBytes: Int
        var allVerified: Bool

        enum CodingKeys: String, CodingKey {
            case benchmark, model, threads
            case promptTokens = "prompt_tokens", outputTokens = "output_tokens"
            case generateCPUSeconds = "generate_cpu_s", verifyCPUSeconds = "verify_cpu_s"
            case verifyToGenerateRatio = "verify_to_generate_ratio", sampleBps = "sample_bps"
            case amortizedPercent = "amortized_percent", commitmentBytes = "commitment_bytes", allVerified = "all_verified"
        }
    }

    func validate() throws {
        guard (1...4096).contains(promptTokens), (1...4096).contains(outputTokens) else { throw ValidationError("token counts must be 1...4096") }
        guard (1...64).contains(threads), (1...100).contains(repetitions) else { throw ValidationError("threads 1...64, repetitions 1...100") }
        guard (0...10_000).contains(sampleBps) else { throw ValidationError("--sample-bps must be 0...10000") }
    }

    /// User and system CPU time of this process so far.
    static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }

    func run() async throws {
        let path = try ModelStore(directory: store).resolve(model)
        let llm = try LlamaModel(path: path)
        let text = try llm.tokenizer.encode("The history of the printing press begins in the fifteenth century, when ", addBOS: false)
        let prompt = (0..<promptTokens).map { text[$0 % text.count] }
        let generator = Generator(model: llm, threads: threads)
        var gen: [Double] = [], ver: [Double] = [], verified = true, produced = 0
        for i in 0...repetitions {
            // A request of its own each time (another seed), generated, then replayed.
            let sampling = SamplingParameters(temperature: temperature, seed: UInt64(i))
            let t0 = Self.cpuSeconds()
            let g = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: outputTokens, sampling: sampling))
            let t1 = Self.cpuSeconds()
            let r = try generator.replay(ReplayRequest(prompt: prompt, output: g.tokens, maxTokens: outputTokens, sampling: sampling))
            let t2 = Self.cpuSeconds()
            verified = verified && r.ok && r.commitment == g.commitment
            guard i > 0 else { continue }  // the warm-up
            gen.append(t1 - t0)
            ver.append(t2 - t1)
            produced += g.tokens.count
        }
        let ratio = ver.reduce(0, +) / gen.reduce(0, +)
        let result = Result(model: path, threads: threads, promptTokens: promptTokens, outputTokens: produced / repetitions,
                            generateCPUSeconds: gen, verifyCPUSeconds: ver, verifyToGenerateRatio: ratio, sampleBps: sampleBps,
                            amortizedPercent: ratio * Double(sampleBps) / 100, commitmentBytes: 32, allVerified: verified)
        if json { try printJSON(result) } else {
            print(String(format: "verify/generate CPU %.3f (amortized %.2f%% at %d bps), %d output tokens, all verified: %@",
                         ratio, result.amortizedPercent, sampleBps, result.outputTokens, verified ? "yes" : "NO"))
        }
        if !verified { throw ExitCode(1) }
    }
}
