import Foundation
import PlexusCore

/// One sequence's KV cache with the buffers to run it: prompts run in batches (each weight
/// row is read once for the whole batch); every output value is computed whole by one thread
/// in a fixed order, so results depend neither on the batch size nor on the thread count.
/// Many sequences share passes through `ForwardPass.step` with the same bits.
public final class InferenceState {
    public let model: LlamaModel
    public let cache: KVCache
    let pass: ForwardPass
    /// Tokens run through the layers together.
    public static let batchLimit = 32
    /// Tokens the cache can hold.
    public var capacity: Int { cache.capacity }
    /// Positions filled so far (for the layers this state runs).
    public var length: Int { cache.length }
    /// Logits after the last `forward`.
    public private(set) var logits: [Float]

    /// A state for up to `capacity` tokens (at most the model's context).
    public init(model: LlamaModel, capacity: Int? = nil, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        let c = model.config
        self.model = model
        cache = try KVCache(config: c, capacity: capacity ?? min(c.contextLength, 4096))
        pass = ForwardPass(model: model, rowLimit: Self.batchLimit, maxContext: cache.capacity, threads: threads)
        logits = [Float](repeating: 0, count: c.vocabSize)
    }

    /// Forgets everything after the first `count` positions.
    public func truncate(to count: Int) { cache.truncate(to: count) }

    /// Runs `token` at the next position through every layer and returns the logits.
    @discardableResult
    public func forward(_ token: TokenID) throws -> [Float] {
        try forward([token])
    }

    /// Runs `tokens` at the next positions through every layer, in batches,
    /// and returns the logits after the last of them.
    @discardableResult
    public func forward(_ tokens: [TokenID]) throws -> [Float] {
        guard !tokens.isEmpty else { throw PlexusError(.malformed, "no tokens to run") }
        var h = try embed(tokens)
        try runLayers(&h, layers: 0..<model.config.layers)
        computeLogits(h)
        return logits
    }

    /// `forward`, adding the final hidden state of every position it runs to `commit`.
    @discardableResult
    public func forward(_ tokens: [TokenID], commit: inout CommitmentBuilder) throws -> [Float] {
        guard !tokens.isEmpty else { throw PlexusError(.malformed, "no tokens to run") }
        var h = try embed(tokens)
        try runLayers(&h, layers: 0..<model.config.layers)
        let normed = finalNormed(h)
        let dim = model.config.embedding
        commit.add(rows: normed, width: dim, count: tokens.count)
        computeLogits(h)
        return logits
    }

    /// Every row of `hidden` through the final norm, as the output projection sees it.
    public func finalNormed(_ hidden: [Float]) -> [Float] { pass.finalNormed(hidden) }

    /// The logits of rows `rows` of `normed` (final-normed states, as `finalNormed` makes
    /// them), one after another: `batchLimit` rows share each pass over the output matrix,
    /// and each value equals what `computeLogits` gives for its row alone.
    public func logits(ofNormed normed: [Float], rows: Range<Int>) -> [Float] {
        precondition(rows.lowerBound >= 0 && rows.upperBound * model.config.embedding <= normed.count)
        return pass.logits(ofNormed: normed, rows: Array(rows))
    }

    /// The embedding of a token: the hidden state entering layer 0.
    public func embed(_ token: TokenID) throws -> [Float] { try embed([token]) }

    /// The embeddings of `tokens`, one after another.
    public func embed(_ tokens: [TokenID]) throws -> [Float] { try pass.embed(tokens) }

    /// Runs `hidden` (the states at the next positions, one after another)
    /// through `layers`, updating their KV cache, and advances the position.
    /// Used whole, or split across nodes with the hidden states handed from
    /// one range to the next.
    public func runLayers(_ hidden: inout [Float], layers: Range<Int>) throws {
        let c = model.config
        guard layers.lowerBound >= 0, layers.upperBound <= c.layers else {
            throw PlexusError(.outOfRange, "layers \(layers) are outside 0..<\(c.layers)")
        }
        guard model.loaded.lowerBound <= layers.lowerBound, layers.upperBound <= model.loaded.upperBound else {
            throw PlexusError(.outOfRange, "layers \(layers) are not all loaded")
        }
        guard !hidden.isEmpty, hidden.count % c.embedding == 0 else {
            throw PlexusError(.malformed, "hidden state has \(hidden.count) values, expected a multiple of \(c.embedding)")
        }
        let n = hidden.count / c.embedding
        guard cache.length + n <= capacity else {
            throw PlexusError(.outOfRange, "the sequence would pass the context limit of \(capacity) tokens")
        }
        let caches = [KVCache](repeating: cache, count: n), positions = Array(cache.length..<(cache.length + n))
        hidden.withUnsafeMutableBufferPointer { pass.runLayers($0.baseAddress!, caches: caches, positions: positions, layers: layers) }
        cache.length += n
    }

    /// Final norm and output projection of a hidden state (the last one, if
    /// several are given) into `logits`.
    public func computeLogits(_ hidden: [Float]) {
        let dim = model.config.embedding
        precondition(hidden.count >= dim)
        logits = pass.logits(ofNormed: pass.finalNormed(Array(hidden.suffix(dim))), rows: [0])
    }
}
