import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Chat with a model locally, streaming the answer to the terminal.")

    @Argument(help: "The user's message (or, with --raw, the text to continue).") var prompt: String
    @Option(name: .long, help: "Model name or .gguf path.") var model: String = "smollm2-135m"
    @Option(name: .long, help: "Most tokens to generate.") var maxTokens: Int = 256
    @Option(name: .long, help: "Sampling temperature (0 = greedy).") var temperature: Double = 0
    @Option(name: .long, help: "Top-k (0 = off).") var topK: Int = 0
    @Option(name: .long, help: "Top-p.") var topP: Double = 1
    @Option(name: .long, help: "Min-p.") var minP: Double = 0
    @Option(name: .long, help: "Repetition penalty (1 = off).") var repetitionPenalty: Double = 1
    @Option(name: .long, help: "Seed of the random draws.") var seed: UInt64 = 0
    @Option(name: .long, help: "Stop before this text (repeatable).") var stop: [String] = []
    @Option(name: .long, help: "Threads for the matrix kernels.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Flag(name: .long, help: "Print the prompt's token ids to stderr.") var showTokens = false
    @Flag(name: .long, help: "Continue the prompt as plain text instead of chatting.") var raw = false
    @Option(name: .long, help: ArgumentHelp("Write the logits after the prompt (raw f32) to this file and stop.", visibility: .hidden))
    var dumpLogits: String?

    func validate() throws {
        guard (1...100_000).contains(maxTokens) else { throw ValidationError("--max-tokens must be 1...100000") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1...256") }
    }

    func run() async throws {
        let path = try ModelStore(directory: store).resolve(model)
        let llm = try LlamaModel(path: path)
        let tokens: [TokenID]
        if raw {
            tokens = try llm.tokenizer.encode(prompt)
        } else {
            guard let source = llm.file.metadata["tokenizer.chat_template"]?.string else {
                throw PlexusError(.unsupported, "the model has no chat template; use --raw")
            }
            tokens = try ChatTemplate(source: source).tokens([ChatMessage(role: "user", content: prompt)], tokenizer: llm.tokenizer)
        }
        if showTokens { FileHandle.standardError.write(Data("prompt tokens: \(tokens)\n".utf8)) }
        if let dumpLogits {
            let state = try InferenceState(model: llm, capacity: tokens.count + 1, threads: threads)
            let logits = try state.forward(tokens)
            try logits.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: dumpLogits)) }
            return
        }
        let sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                          repetitionPenalty: repetitionPenalty, seed: seed)
        let request = GenerationRequest(prompt: tokens, maxTokens: maxTokens, sampling: sampling, stop: stop)
        try Generator(model: llm, threads: threads).generate(request) { piece in
            FileHandle.standardOutput.write(Data(piece.text.utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
