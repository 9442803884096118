import Foundation
import PlexusCore

/// What to generate.
public struct GenerationRequest: Sendable, Hashable {
    /// Prompt tokens (for a continuation: the prompt plus the tokens already generated).
    public var prompt: [TokenID]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Generation stops before the first occurrence of any of these.
    public var stop: [String]
    /// How many of the prompt's last tokens are output already sent (by an
    /// earlier engine): their text primes the decoder and the stop-string
    /// check but is not emitted again, so the continuation streams exactly
    /// the pieces an uninterrupted run would have.
    public var continued: Int
    /// Positions per chunk of the run's commitment.
    public var commitmentInterval: Int
    /// With each piece, the chosen token's log-probability and this many most likely alternatives (nil: none).
    public var logprobs: Int?
    /// OpenAI's `response_format` object as JSON text: the output is constrained to it (see `JSONGrammar`).
    public var responseFormat: String?

    public init(prompt: [TokenID], maxTokens: Int, sampling: SamplingParameters = .init(), stop: [String] = [], continued: Int = 0,
                commitmentInterval: Int = Commitment.defaultInterval, logprobs: Int? = nil, responseFormat: String? = nil) {
        self.logprobs = logprobs
        self.responseFormat = responseFormat
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.continued = continued
        self.commitmentInterval = commitmentInterval
    }
}

/// One streamed piece of output: a token and the text it completed.
public struct GeneratedPiece: Sendable, Hashable {
    public var token: TokenID
    /// Text that became final with this token (may be empty).
    public var text: String
    /// Position of the token in the whole sequence.
    public var position: Int
    /// When asked for: the token's log-probability and the most likely alternatives, most likely first.
    public var logprob: Float?
    public var top: [TokenLogprob] = []
}

/// A token with its log-probability.
public struct TokenLogprob: Sendable, Hashable {
    public var token: TokenID
    public var logprob: Float
    public init(token: TokenID, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// Why generation ended.
public enum FinishReason: String, Sendable, Codable {
    case stop, length, endOfSequence = "eos"
}

/// The result of a generation.
public struct Generation: Sendable, Hashable {
    public var tokens: [TokenID]
    public var text: String
    public var finish: FinishReason
    public var promptTokens: Int
    /// The final hidden states of every position run: the prompt's, and each output
    /// token's but the last unless the run ended by end of sequence (see `Replay`).
    public var commitment: Commitment
    /// Prompt tokens whose positions came from the prefix cache instead of being run.
    public var cachedTokens = 0
}

/// One sequence's generation, step by step, whatever runs its forward passes (a state of its
/// own or a shared batch): checks the request, samples each token from the logits after the
/// last position run, keeps stop strings and the streamed text, and builds the commitment.
public struct SequenceRun {
    public let request: GenerationRequest
    /// Positions the sequence may fill (prompt + output + 1, at most the context).
    public let capacity: Int
    var chooser: TokenChoice
    let tokenizer: Tokenizer
    public private(set) var sequence: [TokenID]
    public private(set) var output: [TokenID] = []
    var commit: CommitmentBuilder
    var decoder: StreamDecoder
    var text = ""
    var emitted: String.Index
    public private(set) var finish = FinishReason.length
    public private(set) var finished = false

    public init(_ request: GenerationRequest, model: LlamaModel) throws {
        chooser = try TokenChoice(request.sampling, responseFormat: request.responseFormat, model: model)
        guard !request.prompt.isEmpty else { throw PlexusError(.malformed, "the prompt is empty") }
        guard request.maxTokens >= 0 else { throw PlexusError(.outOfRange, "max tokens must not be negative") }
        let context = model.config.contextLength
        guard request.prompt.count < context else {
            throw PlexusError(.outOfRange, "the prompt has \(request.prompt.count) tokens; the model's context is \(context)")
        }
        for t in request.prompt where t < 0 || Int(t) >= model.config.vocabSize {
            throw PlexusError(.outOfRange, "prompt token \(t) is outside the vocabulary")
        }
        guard request.continued >= 0, request.continued < request.prompt.count else {
            throw PlexusError(.outOfRange, "continued tokens must be fewer than the prompt's")
        }
        for b in request.sampling.logitBias where Int(b.token) >= model.config.vocabSize {
            throw PlexusError(.malformed, "logit_bias names token \(b.token), outside the vocabulary")
        }
        if let n = request.logprobs, !(0...20).contains(n) { throw PlexusError(.outOfRange, "top_logprobs must be 0...20") }
        self.request = request
        tokenizer = model.tokenizer
        capacity = min(context, request.prompt.count + request.maxTokens + 1)
        sequence = request.prompt
        commit = CommitmentBuilder(interval: request.commitmentInterval)
        decoder = StreamDecoder(tokenizer: model.tokenizer)
        for id in request.prompt.suffix(request.continued) { text += decoder.push(id) }
        // What the earlier engine held back (a partial character or a possible
        // stop-string prefix) is emitted by this one.
        emitted = Generator.heldBackStart(text, stop: request.stop)
    }

    /// Adds the final-normed states of positions just run (`rows` × the model's width) to the commitment.
    public mutating func record(_ normed: [Float], dim: Int) {
        commit.add(rows: normed, width: dim)
    }

    /// Samples the next token from the logits after the last position run, emitting what text
    /// became final; returns the token to run next, or nil once the sequence has finished.
    public mutating func advance(_ logits: [Float], onPiece: (GeneratedPiece) throws -> Void) throws -> TokenID? {
        guard !finished else { return nil }
        guard output.count < request.maxTokens && sequence.count < capacity else { return end(.length) }
        let (id, adjusted) = try chooser.choose(logits, history: sequence[...], index: UInt64(sequence.count))
        if id == tokenizer.eos || tokenizer.isControl(id) { return end(.endOfSequence) }
        chooser.accept(id)
        var logprob: Float?, top: [TokenLogprob] = []
        if let n = request.logprobs {
            let (l, t) = Sampler.logprobs(adjusted, token: id, top: n)
            logprob = l
            top = t.map { TokenLogprob(token: $0.0, logprob: $0.1) }
        }
        sequence.append(id)
        output.append(id)
        text += decoder.push(id)
        // Emit what can no longer become part of a stop string.
        var safe = text.endIndex
        for s in request.stop where !s.isEmpty {
            if let r = text.range(of: s, range: emitted..<text.endIndex) {
                let piece = String(text[emitted..<r.lowerBound])
                text = String(text[..<r.lowerBound])
                emitted = text.endIndex
                try onPiece(GeneratedPiece(token: id, text: piece, position: sequence.count - 1, logprob: logprob, top: top))
                return end(.stop)
            }
            var k = min(s.count - 1, text.distance(from: emitted, to: text.endIndex))
            while k > 0 {
                let start = text.index(text.endIndex, offsetBy: -k)
                if s.hasPrefix(text[start...]) { safe = min(safe, start); break }
                k -= 1
            }
        }
        let piece = String(text[emitted..<safe])
        emitted = safe
        try onPiece(GeneratedPiece(token: id, text: piece, position: sequence.count - 1, logprob: logprob, top: top))
        guard output.count < request.maxTokens && sequence.count < capacity else { return end(.length) }
        return id
    }

    private mutating func end(_ reason: FinishReason) -> TokenID? {
        finish = reason
        finished = true
        return nil
    }

    /// The generation, after emitting any text held back (a stop-string prefix that never completed).
    public mutating func result(onPiece: (GeneratedPiece) throws -> Void) throws -> Generation {
        if finish != .stop {
            text += decoder.finish()
            if emitted < text.endIndex, let last = output.last {
                try onPiece(GeneratedPiece(token: last, text: String(text[emitted...]), position: sequence.count - 1))
            }
            emitted = text.endIndex
        }
        return Generation(tokens: output, text: text, finish: finish, promptTokens: request.prompt.count, commitment: commit.finish())
    }
}

/// Runs a model over a prompt and samples a continuation, alone (`BatchScheduler` runs many
/// sequences in shared passes with the same bits).
public struct Generator: Sendable {
    public let model: LlamaModel
    public let threads: Int

    public init(model: LlamaModel, threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.model = model
        self.threads = threads
    }

    /// Generates, calling `onPiece` for each token as it is produced.
    @discardableResult
    public func generate(_ request: GenerationRequest, onPiece: (GeneratedPiece) throws -> Void = { _ in }) throws -> Generation {
        var run = try SequenceRun(request, model: model)
        let state = try InferenceState(model: model, capacity: run.capacity, threads: threads)
        var logits = try state.forward(request.prompt, commit: &run.commit)
        while let next = try run.advance(logits, onPiece: onPiece) {
            logits = try state.forward([next], commit: &run.commit)
        }
        return try run.result(onPiece: onPiece)
    }
}

extension Generator {
    /// Where the text that an engine would not yet have emitted begins: the
    /// longest suffix that is a proper prefix of a stop string.
    static func heldBackStart(_ text: String, stop: [String]) -> String.Index {
        var safe = text.endIndex
        for s in stop where !s.isEmpty {
            var k = min(s.count - 1, text.count)
            while k > 0 {
                let start = text.index(text.endIndex, offsetBy: -k)
                if s.hasPrefix(text[start...]) { safe = min(safe, start); break }
                k -= 1
            }
        }
        return safe
    }

    /// The generation as an async sequence of pieces (text with its token id),
    /// produced on a background thread. Cancelling the consuming task stops
    /// generation at the next token.
    public func stream(_ request: GenerationRequest) -> AsyncThrowingStream<GeneratedPiece, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: GeneratedPiece.self)
        let cancelled = OnceFlag()
        continuation.onTermination = { _ in cancelled.set() }
        let generator = self
        Thread.detachNewThread {
            do {
                try generator.generate(request) { piece in
                    if cancelled.isSet { throw CancellationError() }
                    continuation.yield(piece)
                }
                continuation.finish()
            } catch is CancellationError {
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }
}
