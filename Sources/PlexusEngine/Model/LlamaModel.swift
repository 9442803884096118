import Foundation
import PlexusCore

/// A llama-architecture transformer over memory-mapped GGUF weights.
///
/// Weight shapes (ggml order, inner dimension first):
/// token_embd `(dim, vocab)`; per layer attn_norm `(dim)`, attn_q `(dim, dim)`,
/// attn_k/attn_v `(dim, kv_dim)`, attn_output `(dim, dim)`, ffn_norm `(dim)`,
/// ffn_gate/ffn_up `(dim, ff)`, ffn_down `(ff, dim)`; output_norm `(dim)`;
/// output `(dim, vocab)` or, with tied embeddings, token_embd again.
public final class LlamaModel: @unchecked Sendable {
    // Invariant: immutable after init; weights point into the mapping held by `file`.
    public let config: LlamaConfig
    public let file: GGUFFile
    public let tokenizer: Tokenizer
    public let path: String

    struct Layer {
        var attnNorm: [Float]
        var wq: WeightMatrix, wk: WeightMatrix, wv: WeightMatrix, wo: WeightMatrix
        var ffnNorm: [Float]
        var gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    }

    let embedding: WeightMatrix
    let output: WeightMatrix
    let outputNorm: [Float]
    /// Layers outside `loaded` are nil.
    let layers: [Layer?]
    /// The layers whose weights are loaded (all of them unless a shard asked for fewer).
    public let loaded: Range<Int>

    /// Loads the model at `path`; a shard loads only `layers` of it (the embedding, output norm
    /// and output matrix always).
    public convenience init(path: String, layers: Range<Int>? = nil) throws {
        try self.init(file: GGUFFile(path: path), path: path, layers: layers)
    }

    public init(file: GGUFFile, path: String, layers wanted: Range<Int>? = nil) throws {
        self.file = file
        self.path = path
        config = try LlamaConfig(gguf: file)
        tokenizer = try Tokenizer(gguf: file)
        let c = config
        // Tensor data lie inside the file, so its size bounds the repacked weights.
        let arena = try PackedArena(capacity: file.file.bytes.count + 64 * file.tensors.count)
        func tensor(_ name: String) throws -> GGUFTensorInfo {
            guard let t = file.tensor(name) else { throw PlexusError(.badModel, "tensor \(name) is missing") }
            return t
        }
        func matrix(_ name: String, cols: Int, rows: Int) throws -> WeightMatrix {
            let m = try WeightMatrix(file, try tensor(name), arena: arena)
            guard m.cols == cols, m.rows == rows else {
                throw PlexusError(.badModel, "tensor \(name) is \(m.cols)×\(m.rows), expected \(cols)×\(rows)")
            }
            return m
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            let m = try matrix(name, cols: n, rows: 1)
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { m.row(0, into: $0.baseAddress!) }
            return out
        }
        embedding = try matrix("token_embd.weight", cols: c.embedding, rows: c.vocabSize)
        output = file.tensor("output.weight") != nil ? try matrix("output.weight", cols: c.embedding, rows: c.vocabSize) : embedding
        outputNorm = try vector("output_norm.weight", c.embedding)
        let loaded = wanted ?? 0..<c.layers
        guard loaded.lowerBound >= 0, loaded.upperBound <= c.layers, !loaded.isEmpty else {
            throw PlexusError(.outOfRange, "layers \(loaded.lowerBound)-\(loaded.upperBound) are not within the model's 0-\(c.layers)")
        }
        self.loaded = loaded
        layers = try (0..<c.layers).map { i in
            guard loaded.contains(i) else { return nil }
            let p = "blk.\(i)."
            return Layer(
                attnNorm: try vector(p + "attn_norm.weight", c.embedding),
                wq: try matrix(p + "attn_q.weight", cols: c.embedding, rows: c.embedding),
                wk: try matrix(p + "attn_k.weight", cols: c.embedding, rows: c.kvDim),
                wv: try matrix(p + "attn_v.weight", cols: c.embedding, rows: c.kvDim),
                wo: try matrix(p + "attn_output.weight", cols: c.embedding, rows: c.embedding),
                ffnNorm: try vector(p + "ffn_norm.weight", c.embedding),
                gate: try matrix(p + "ffn_gate.weight", cols: c.embedding, rows: c.feedForward),
                up: try matrix(p + "ffn_up.weight", cols: c.embedding, rows: c.feedForward),
                down: try matrix(p + "ffn_down.weight", cols: c.feedForward, rows: c.embedding))
        }
    }
}
