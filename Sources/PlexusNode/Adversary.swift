import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusWire

/// Ways a node can cheat, for drills on development chains: each is what a dishonest
/// operator could do to save compute or to be paid for work it did not do. Verification
/// must catch every one of them on every checked request.
public enum AdversaryMode: String, CaseIterable, Sendable {
    /// Serves a re-quantized copy of the weights (one tensor kind moved to another format) while claiming the card's hash.
    case quantSwap = "quant-swap"
    /// Skips the last transformer layer.
    case layerSkip = "layer-skip"
    /// Samples with another seed than the request's.
    case wrongSeed = "wrong-seed"
    /// Changes one output token after generation.
    case tamper
    /// Answers with random tokens.
    case random
    /// Answers with an earlier answer to another prompt.
    case replay
    /// Generates honestly but signs a wrong commitment.
    case badCommitment = "bad-commitment"

    /// Whether a drill may run on `chainId`: development chains only.
    public static func allowed(onChain chainId: String) -> Bool {
        chainId == "plexus-local" || chainId == "plexus-dev" || chainId.hasSuffix("-dev") || chainId.hasPrefix("plexus-test")
    }

    /// Whether this mode serves different weights (written by `deriveWeights`).
    public var changesWeights: Bool { self == .quantSwap || self == .layerSkip }

    /// Writes the weights a `quant-swap` or `layer-skip` node serves, derived from the GGUF at `path`, to `out`.
    public func deriveWeights(from path: String, to out: String) throws {
        let file = try GGUFFile(path: path)
        var w = GGUFWriter()
        w.alignment = file.alignment
        let layers = try LlamaConfig(gguf: file).layers
        for k in file.keys {
            guard let v = file.metadata[k] else { continue }
            w.set(k, self == .layerSkip && k.hasSuffix(".block_count") ? .uint32(UInt32(max(1, layers - 1))) : v)
        }
        let dropped = "blk.\(layers - 1)."
        for t in file.tensors {
            guard let type = t.type else { throw PlexusError(.unsupported, "tensor \(t.name) has an unknown type") }
            if self == .layerSkip && t.name.hasPrefix(dropped) && layers > 1 { continue }
            let raw = try file.data(of: t)
            var tensor = GGUFWriter.Tensor(name: t.name, shape: t.shape, type: type, data: Array(raw))
            if self == .quantSwap && t.name.hasSuffix("ffn_down.weight") { tensor = Self.requantized(tensor, raw) }
            w.tensors.append(tensor)
        }
        try w.write(to: out)
    }

    /// The same weights in another format: quantized types dequantized to F32 (the engine then
    /// computes them without quantizing the activations), F32 rounded to bfloat16 precision.
    static func requantized(_ t: GGUFWriter.Tensor, _ raw: UnsafeRawBufferPointer) -> GGUFWriter.Tensor {
        let count = t.shape.reduce(1, *)
        var floats = [Float](repeating: 0, count: count)
        floats.withUnsafeMutableBufferPointer { Blocks.dequantize(t.type, raw.baseAddress!, count: count, into: $0.baseAddress!) }
        if t.type == .f32 { floats = floats.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) } }
        let data = floats.withUnsafeBytes { Array($0) }
        return GGUFWriter.Tensor(name: t.name, shape: t.shape, type: .f32, data: data)
    }
}

/// The built-in engine, cheating as `mode` says (drills only; its name says so in `/health` and the logs).
public final class AdversaryBackend: GenerationBackend, @unchecked Sendable {
    // Invariant: `earlier` is touched only under `lock`.
    let inner: EngineBackend
    public let mode: AdversaryMode
    private let lock = NSLock()
    private var earlier: (pieces: [(TokenID?, String)], result: BackendResult)?

    /// `inner` serves the weights the mode calls for (derived ones for quant-swap and layer-skip)
    /// and claims the card's hash whatever they are.
    public init(inner: EngineBackend, mode: AdversaryMode) {
        self.inner = inner
        self.mode = mode
    }

    public var name: String { "engine [ADVERSARY DRILL: \(mode.rawValue)]" }
    public var modelHash: Hash256 { inner.modelHash }
    public var contextLength: Int { inner.contextLength }
    /// It claims so, as a cheat would; verification shows otherwise.
    public var exactlyReExecutable: Bool { true }
    /// The engine underneath applies every sampling parameter.
    public var fullSampling: Bool { true }
    public var batchStats: BatchScheduler.Stats? { inner.batchStats }

    public func generate(_ r: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        switch mode {
        case .quantSwap, .layerSkip:
            return try inner.generate(r, onToken: onToken)
        case .wrongSeed:
            var other = r
            other.seed &+= 1
            return try inner.generate(other, onToken: onToken)
        case .badCommitment:
            var result = try inner.generate(r, onToken: onToken)
            var root = result.commitment.root.bytes
            root[0] ^= 0x01
            result.commitment.root = try Hash256(bytes: root)
            return result
        case .tamper:
            var first = true
            let vocab = inner.model.config.vocabSize
            var swapped: TokenID?
            var result = try inner.generate(r) { token, text in
                guard first, let token else { return try onToken(token, text) }
                first = false
                let other = TokenID((Int(token) + 1) % vocab)
                swapped = other
                try onToken(other, inner.model.tokenizer.decode([other]))
            }
            if let swapped, !result.tokens.isEmpty { result.tokens[0] = swapped }
            return result
        case .random:
            let prompt = try inner.promptTokens(r).count + r.continuation.count
            let n = max(1, min(64, r.maxTokens - r.continuation.count))
            var tokens: [TokenID] = []
            for _ in 0..<n {
                let t = TokenID(Int.random(in: 0..<inner.model.config.vocabSize))
                tokens.append(t)
                try onToken(t, inner.model.tokenizer.decode([t]))
            }
            var root = [UInt8](repeating: 0, count: 32)
            for i in root.indices { root[i] = UInt8.random(in: 0...255) }
            return BackendResult(promptTokens: prompt, finish: "length", tokens: tokens,
                                 commitment: ReceiptCommitment(root: try Hash256(bytes: root), chunks: UInt32((prompt + n + 31) / 32), exact: true))
        case .replay:
            // An earlier answer, or one made for a decoy prompt on the first request.
            var old = lock.withLock { earlier }
            if old == nil {
                var decoy = r
                decoy.messages = [ChatMessage(role: "user", content: "Tell me about the sea.")]
                decoy.prompt = nil
                old = try record(decoy)
            }
            let fresh = try record(r)
            lock.withLock { earlier = fresh }
            guard let old else { return fresh.result }
            for (t, text) in old.pieces { try onToken(t, text) }
            return old.result
        }
    }

    private func record(_ r: GenerateRequest) throws -> (pieces: [(TokenID?, String)], result: BackendResult) {
        var pieces: [(TokenID?, String)] = []
        let result = try inner.generate(r) { t, text in pieces.append((t, text)) }
        return (pieces, result)
    }
}
