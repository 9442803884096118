import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Chat with a model locally, streaming the answer (greedy).")

    @Argument(help: "The user's message.") var prompt: String
    @Option(name: .long, help: "Model name or .gguf path.") var model: String = "smollm2-135m"
    @Option(name: .long, help: "Most tokens to generate.") var maxTokens: Int = 128
    @Option(name: .long, help: "Threads for the matrix kernels.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .long, help: "Model store directory.") var store: String?

    func validate() throws {
        guard (1...100_000).contains(maxTokens) else { throw ValidationError("--max-tokens must be 1...100000") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1...256") }
    }

    func run() async throws {
        let path = try ModelStore(directory: store).resolve(model)
        let llm = try LlamaModel(path: path)
        guard let source = llm.file.metadata["tokenizer.chat_template"]?.string else {
            throw PlexusError(.unsupported, "the model has no chat template")
        }
        let template = try ChatTemplate(source: source)
        let tokens = try template.tokens([ChatMessage(role: "user", content: prompt)], tokenizer: llm.tokenizer)
        let state = try InferenceState(model: llm, threads: threads)
        guard tokens.count + 1 < state.capacity else {
            throw PlexusError(.outOfRange, "the prompt has \(tokens.count) tokens; the context holds \(state.capacity)")
        }
        var logits: [Float] = []
        for t in tokens { logits = try state.forward(t) }
        var decoder = StreamDecoder(tokenizer: llm.tokenizer)
        for _ in 0..<maxTokens {
            guard state.length < state.capacity else { break }
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            let id = TokenID(best)
            if id == llm.tokenizer.eos || llm.tokenizer.isControl(id) { break }
            FileHandle.standardOutput.write(Data(decoder.push(id).utf8))
            logits = try state.forward(id)
        }
        FileHandle.standardOutput.write(Data((decoder.finish() + "\n").utf8))
    }
}
