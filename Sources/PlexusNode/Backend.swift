import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger
import PlexusWire

/// What produced a node's answer.
public struct BackendResult: Sendable {
    public var promptTokens: Int
    public var finish: String
    public var tokens: [TokenID]
    /// What the receipt commits to: the engine's hidden-state commitment, or that the
    /// backend cannot be re-executed bit for bit.
    public var commitment: ReceiptCommitment = .inexact
}

/// Something that generates tokens for a node.
public protocol GenerationBackend: Sendable {
    /// Shown in /health and the node's logs.
    var name: String { get }
    /// SHA-256 of the weights (what receipts and model cards name).
    var modelHash: Hash256 { get }
    var contextLength: Int { get }
    /// Generates, calling `onToken` with each new token (nil for text that
    /// completes without a new token, such as a final partial character) and
    /// the text it completed; `onToken` throws to stop early (the client went away).
    func generate(_ request: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult
    /// True for a backend that never blocks (it answers at once): the node
    /// then runs it in the request's own task and sends the answer in one
    /// piece; other backends run on the node's generation threads and stream.
    var answersAtOnce: Bool { get }
    /// Whether a verifier can re-execute this backend's answers bit for bit (the built-in
    /// engine); shown in `/health`, where gateways read it for `"verify": "exact"`.
    var exactlyReExecutable: Bool { get }
}

extension GenerationBackend {
    public var answersAtOnce: Bool { false }
    public var exactlyReExecutable: Bool { false }
}

/// The built-in engine: deterministic, so another node can continue its output exactly.
public struct EngineBackend: GenerationBackend {
    public let model: LlamaModel
    public let modelHash: Hash256
    public let threads: Int
    public var name: String { "engine" }
    public var contextLength: Int { model.config.contextLength }
    public var exactlyReExecutable: Bool { true }
    let template: ChatTemplate?

    public init(path: String, weightsHash: Hash256, threads: Int) throws {
        model = try LlamaModel(path: path)
        modelHash = weightsHash
        self.threads = threads
        template = try model.file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
    }

    /// The prompt's tokens: chat messages through the model's template, or raw text.
    public func promptTokens(_ r: GenerateRequest) throws -> [TokenID] { try r.promptTokens(model: model, template: template) }

    public func generate(_ r: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        let prompt = try promptTokens(r)
        let all = prompt + r.continuation
        guard all.count < contextLength else {
            throw PlexusError(.outOfRange, "the prompt has \(all.count) tokens; the model's context is \(contextLength)")
        }
        let request = GenerationRequest(prompt: all, maxTokens: r.maxTokens - r.continuation.count, sampling: r.sampling,
                                        stop: r.stop, continued: r.continuation.count)
        var lastPosition = -1
        let g = try Generator(model: model, threads: threads).generate(request) { piece in
            let isNew = piece.position > lastPosition
            lastPosition = piece.position
            try onToken(isNew ? piece.token : nil, piece.text)
        }
        return BackendResult(promptTokens: all.count, finish: g.finish == .endOfSequence ? "stop" : g.finish.rawValue, tokens: g.tokens,
                             commitment: ReceiptCommitment(root: g.commitment.root, chunks: UInt32(g.commitment.chunks.count), exact: true))
    }
}

/// A synthetic backend for benchmarking the gateway: it answers at once by
/// echoing the words of the last message, one token per word. It serves the
/// model "echo" only, and says so wherever it appears.
public struct EchoBackend: GenerationBackend {
    public init() {}
    public var name: String { "echo (synthetic, for benchmarks)" }
    public var modelHash: Hash256 { Hash256.of(Array("plexus-echo-backend".utf8)) }
    public var contextLength: Int { 1 << 20 }
    public var answersAtOnce: Bool { true }

    public func generate(_ r: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        let text = r.messages?.last?.content ?? r.prompt ?? ""
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard !words.isEmpty else { throw PlexusError(.malformed, "nothing to echo") }
        var out: [TokenID] = []
        var i = r.continuation.count
        while out.count + r.continuation.count < r.maxTokens && i < words.count {
            let id = TokenID(i)
            try onToken(id, (i == 0 ? "" : " ") + words[i])
            out.append(id)
            i += 1
        }
        return BackendResult(promptTokens: words.count + r.continuation.count,
                             finish: i >= words.count ? "stop" : "length", tokens: out)
    }
}
