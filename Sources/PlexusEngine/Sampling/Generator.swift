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

    public init(prompt: [TokenID], maxTokens: Int, sampling: SamplingParameters = .init(), stop: [String] = [], continued: Int = 0,
                commitmentInterval: Int = Commitment.defaultInterval) {
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
}

/// Runs a model over a prompt and samples a continuation.
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
        let sampler = try Sampler(request.sampling)
        guard !request.prompt.isEmpty else { throw PlexusError(.malformed, "the prompt is empty") }
        guard request.maxTokens >= 0 else { throw PlexusError(.outOfRange, "max tokens must not be negative") }
        let context = model.config.contextLength
        guard request.prompt.count < context else {
            throw PlexusError(.outOfRange, "the prompt has \(request.prompt.count) tokens; the model's context is \(context)")
        }
        for t in request.prompt where t < 0 || Int(t) >= model.config.vocabSize {
            throw PlexusError(.outOfRange, "prompt token \(t) is outside the vocabulary")
        }
        let capacity = min(context, request.prompt.count + request.maxTokens + 1)
        let state = try InferenceState(model: model, capacity: capacity, threads: threads)
        var commit = CommitmentBuilder(interval: request.commitmentInterval)
        var logits = try state.forward(request.prompt, commit: &commit)
        var sequence = request.prompt
        var out: [TokenID] = []
        guard request.continued >= 0, request.continued < request.prompt.count else {
            throw PlexusError(.outOfRange, "continued tokens must be fewer than the prompt's")
        }
        var decoder = StreamDecoder(tokenizer: model.tokenizer)
        var text = ""
        for id in request.prompt.suffix(request.continued) { text += decoder.push(id) }
        // What the earlier engine held back (a partial character or a possible
        // stop-string prefix) is emitted by this one.
        var emitted = Self.heldBackStart(text, stop: request.stop)
        var finish = FinishReason.length
        let tok = model.tokenizer
        generation: while out.count < request.maxTokens && sequence.count < capacity {
            let id = sampler.sample(logits, history: sequence[...], index: UInt64(sequence.count))
            if id == tok.eos || tok.isControl(id) {
                finish = .endOfSequence
                break
            }
            sequence.append(id)
            out.append(id)
            text += decoder.push(id)
            // Emit what can no longer become part of a stop string.
            var safe = text.endIndex
            for s in request.stop where !s.isEmpty {
                if let r = text.range(of: s, range: emitted..<text.endIndex) {
                    let piece = String(text[emitted..<r.lowerBound])
                    text = String(text[..<r.lowerBound])
                    try onPiece(GeneratedPiece(token: id, text: piece, position: sequence.count - 1))
                    finish = .stop
                    break generation
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
            try onPiece(GeneratedPiece(token: id, text: piece, position: sequence.count - 1))
            if out.count < request.maxTokens && sequence.count < capacity {
                logits = try state.forward([id], commit: &commit)
            }
        }
        if finish != .stop {
            text += decoder.finish()
            if emitted < text.endIndex, let last = out.last {
                try onPiece(GeneratedPiece(token: last, text: String(text[emitted...]), position: sequence.count - 1))
            }
        }
        return Generation(tokens: out, text: text, finish: finish, promptTokens: request.prompt.count, commitment: commit.finish())
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
