import PlexusCore

/// Hyper-parameters of a llama-architecture model, read from GGUF metadata.
public struct LlamaConfig: Sendable, Hashable {
    public var layers: Int
    public var embedding: Int
    public var feedForward: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ropeDims: Int
    public var ropeBase: Float
    public var normEpsilon: Float
    public var contextLength: Int
    public var vocabSize: Int

    /// Largest context a model may declare.
    public static let maxContext = 1 << 20

    public init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        guard let arch = m["general.architecture"]?.string else {
            throw PlexusError(.badModel, "general.architecture is missing")
        }
        guard arch == "llama" else {
            throw PlexusError(.unsupported, "architecture '\(arch)' is not supported (llama is)")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = m["llama." + key]?.int else { throw PlexusError(.badModel, "llama.\(key) is missing") }
            guard range.contains(v) else { throw PlexusError(.badModel, "llama.\(key) = \(v) is outside \(range)") }
            return v
        }
        layers = try int("block_count", 1...1024)
        embedding = try int("embedding_length", 32...65_536)
        feedForward = try int("feed_forward_length", 32...1_048_576)
        heads = try int("attention.head_count", 1...1024)
        kvHeads = (try? int("attention.head_count_kv", 1...1024)) ?? heads
        contextLength = try int("context_length", 1...Self.maxContext)
        guard embedding % heads == 0, heads % kvHeads == 0 else {
            throw PlexusError(.badModel, "head counts \(heads)/\(kvHeads) do not divide the embedding \(embedding)")
        }
        headDim = embedding / heads
        ropeDims = (try? int("rope.dimension_count", 2...4096)) ?? headDim
        guard ropeDims <= headDim, ropeDims % 2 == 0 else { throw PlexusError(.badModel, "rope dimensions \(ropeDims) do not fit the head") }
        ropeBase = Float(m["llama.rope.freq_base"]?.double ?? 10_000)
        normEpsilon = Float(m["llama.attention.layer_norm_rms_epsilon"]?.double ?? 1e-5)
        guard ropeBase > 0, normEpsilon > 0, normEpsilon < 1 else { throw PlexusError(.badModel, "invalid rope base or norm epsilon") }
        if let n = m["tokenizer.ggml.tokens"]?.array?.count { vocabSize = n } else { vocabSize = try int("vocab_size", 1...10_000_000) }
    }

    /// Width of the key and value projections.
    public var kvDim: Int { kvHeads * headDim }
}
