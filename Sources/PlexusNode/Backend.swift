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
    /// Prompt tokens whose positions came from a prefix cache.
    public var cachedTokens = 0
}

/// One streamed piece with what the request asked to know of its token.
public struct BackendPiece: Sendable {
    /// The new token (nil for text that completes without one).
    public var token: TokenID?
    public var text: String
    /// With `logprobs`: the token's own text, its log-probability and the likely alternatives.
    public var tokenText: String?
    public var logprob: Double?
    public var top: [NodeEvent.Alternative] = []
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
    /// Whether it applies `presence_penalty`, `frequency_penalty`, `logit_bias` and
    /// `response_format` (the built-in engine); a node refuses those for a backend that does not.
    var fullSampling: Bool { get }
    /// Whether its pieces carry log-probabilities when asked (the built-in engine); a node
    /// refuses `logprobs` for a backend that does not.
    var reportsLogprobs: Bool { get }
    /// `generate`, with each piece's log-probabilities when the request asks for them.
    func generate(_ request: GenerateRequest, onPiece: (BackendPiece) throws -> Void) throws -> BackendResult
    /// What the engine's batch scheduler has done (nil for other backends), for `/metrics`.
    var batchStats: BatchScheduler.Stats? { get }
}

extension GenerationBackend {
    public var answersAtOnce: Bool { false }
    public var exactlyReExecutable: Bool { false }
    public var fullSampling: Bool { false }
    public var reportsLogprobs: Bool { false }
    public var batchStats: BatchScheduler.Stats? { nil }
    public func generate(_ request: GenerateRequest, onPiece: (BackendPiece) throws -> Void) throws -> BackendResult {
        try generate(request) { token, text in try onPiece(BackendPiece(token: token, text: text)) }
    }
}

/// The built-in engine: deterministic, so another node can continue its output exactly.
/// Concurrent requests share forward passes (`BatchScheduler`) with the bits each would have alone.
public struct EngineBackend: GenerationBackend {
    public let model: LlamaModel
    public let modelHash: Hash256
    public let threads: Int
    public let scheduler: BatchScheduler
    public var name: String { "engine" }
    public var contextLength: Int { model.config.contextLength }
    public var exactlyReExecutable: Bool { true }
    let template: ChatTemplate?

    /// `slots` sequences share each step of at most `stepTokens` tokens; `prefixCacheBytes`
    /// bounds the prefix cache (0: none).
    public init(path: String, weightsHash: Hash256, threads: Int, slots: Int = 1, stepTokens: Int = 32, prefixCacheBytes: Int = 0) throws {
        model = try LlamaModel(path: path)
        modelHash = weightsHash
        self.threads = threads
        scheduler = BatchScheduler(model: model, slots: slots, stepTokens: stepTokens, threads: threads, prefixCacheBytes: prefixCacheBytes)
        template = try model.file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
    }

    /// The prompt's tokens: chat messages through the model's template, or raw text.
    public func promptTokens(_ r: GenerateRequest) throws -> [TokenID] { try r.promptTokens(model: model, template: template) }

    public var fullSampling: Bool { true }
    public var reportsLogprobs: Bool { true }
    public var batchStats: BatchScheduler.Stats? { scheduler.stats }

    public func generate(_ r: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        try generate(r) { (p: BackendPiece) in try onToken(p.token, p.text) }
    }

    public func generate(_ r: GenerateRequest, onPiece: (BackendPiece) throws -> Void) throws -> BackendResult {
        let prompt = try promptTokens(r)
        let all = prompt + r.continuation
        guard all.count < contextLength else {
            throw PlexusError(.outOfRange, "the prompt has \(all.count) tokens; the model's context is \(contextLength)")
        }
        let request = GenerationRequest(prompt: all, maxTokens: r.maxTokens - r.continuation.count, sampling: r.sampling,
                                        stop: r.stop, continued: r.continuation.count, logprobs: r.logprobs,
                                        responseFormat: r.responseFormat)
        var lastPosition = -1
        let tokenizer = model.tokenizer
        let g = try scheduler.generate(request) { piece in
            let isNew = piece.position > lastPosition
            lastPosition = piece.position
            var out = BackendPiece(token: isNew ? piece.token : nil, text: piece.text)
            if isNew, let lp = piece.logprob {
                out.tokenText = tokenizer.decode([piece.token])
                out.logprob = Double(lp)
                out.top = piece.top.map { .init(token: $0.token, text: tokenizer.decode([$0.token]), logprob: Double($0.logprob)) }
            }
            try onPiece(out)
        }
        return BackendResult(promptTokens: all.count, finish: g.finish == .endOfSequence ? "stop" : g.finish.rawValue, tokens: g.tokens,
                             commitment: ReceiptCommitment(root: g.commitment.root, chunks: UInt32(g.commitment.chunks.count), exact: true),
                             cachedTokens: g.cachedTokens)
    }
}

/// A synthetic backend for benchmarking the gateway: it echoes the words of the last
/// message, one token per word, at once or (`tokenDelayMillis`) at a set pace standing in
/// for generation time, streamed. It serves the model "echo" only, and says so wherever it appears.
public struct EchoBackend: GenerationBackend {
    public let tokenDelayMillis: Int
    public init(tokenDelayMillis: Int = 0) { self.tokenDelayMillis = tokenDelayMillis }
    public var name: String { "echo (synthetic, for benchmarks)" }
    public var modelHash: Hash256 { Hash256.of(Array("plexus-echo-backend".utf8)) }
    public var contextLength: Int { 1 << 20 }
    public var answersAtOnce: Bool { tokenDelayMillis == 0 }

    public func generate(_ r: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        let text = r.messages?.last?.content ?? r.prompt ?? ""
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard !words.isEmpty else { throw PlexusError(.malformed, "nothing to echo") }
        var out: [TokenID] = []
        var i = r.continuation.count
        while out.count + r.continuation.count < r.maxTokens && i < words.count {
            let id = TokenID(i)
            if tokenDelayMillis > 0 { usleep(UInt32(tokenDelayMillis) * 1_000) }
            try onToken(id, (i == 0 ? "" : " ") + words[i])
            out.append(id)
            i += 1
        }
        return BackendResult(promptTokens: words.count + r.continuation.count,
                             finish: i >= words.count ? "stop" : "length", tokens: out)
    }
}
