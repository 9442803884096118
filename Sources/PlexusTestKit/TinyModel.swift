import Foundation
import PlexusCore
import PlexusEngine

/// Writes tiny llama-architecture GGUF files with random weights, for fast
/// engine tests: a byte-level vocabulary (256 byte tokens, a few merges, the
/// ChatML special tokens) and small dimensions.
public enum TinyModel {
    /// Options for the tiny model.
    public struct Shape: Sendable {
        public var layers = 2
        public var embedding = 64
        public var heads = 4
        public var kvHeads = 2
        public var feedForward = 128
        public var context = 256
        public var weightType: GGMLType = .q4_1
        public var architecture = "llama"

        public init() {}
    }

    /// Writes the model to `path` and returns it.
    @discardableResult
    public static func write(to path: String, shape: Shape = Shape(), seed: UInt64 = 1) throws -> String {
        var rng = SeededGenerator(seed: seed)
        var tokens: [String] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var types: [GGUFValue] = [.int32(3), .int32(3), .int32(3)]
        for b in 0..<256 {
            tokens.append(byteChar(UInt8(b)))
            types.append(.int32(1))
        }
        let merges = ["h e", "l l", "he ll", "Ġ t", "Ġt h"]
        for m in merges {
            tokens.append(m.replacingOccurrences(of: " ", with: ""))
            types.append(.int32(1))
        }
        let vocab = tokens.count
        var w = GGUFWriter()
        w.set("general.architecture", .string(shape.architecture))
        w.set("llama.block_count", .uint32(UInt32(shape.layers)))
        w.set("llama.context_length", .uint32(UInt32(shape.context)))
        w.set("llama.embedding_length", .uint32(UInt32(shape.embedding)))
        w.set("llama.feed_forward_length", .uint32(UInt32(shape.feedForward)))
        w.set("llama.attention.head_count", .uint32(UInt32(shape.heads)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(shape.kvHeads)))
        w.set("llama.rope.freq_base", .float32(10_000))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(elementType: 8, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(elementType: 5, types))
        w.set("tokenizer.ggml.merges", .array(elementType: 8, merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("tokenizer.chat_template", .string(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"))
        let d = shape.embedding, kv = d / shape.heads * shape.kvHeads, ff = shape.feedForward
        func matrix(_ name: String, _ cols: Int, _ rows: Int, _ type: GGMLType) -> GGUFWriter.Tensor {
            .init(name: name, shape: [cols, rows], type: type, data: randomBlocks(type, cols * rows, &rng))
        }
        func norm(_ name: String) -> GGUFWriter.Tensor {
            .init(name: name, shape: [d], type: .f32,
                  data: (0..<d).flatMap { _ in withUnsafeBytes(of: Float(0.8 + Double(rng.next() % 400) / 1000).bitPattern.littleEndian, Array.init) })
        }
        w.tensors.append(matrix("token_embd.weight", d, vocab, .q8_0))
        w.tensors.append(norm("output_norm.weight"))
        for l in 0..<shape.layers {
            let p = "blk.\(l)."
            w.tensors += [norm(p + "attn_norm.weight"), matrix(p + "attn_q.weight", d, d, shape.weightType),
                          matrix(p + "attn_k.weight", d, kv, shape.weightType), matrix(p + "attn_v.weight", d, kv, shape.weightType),
                          matrix(p + "attn_output.weight", d, d, shape.weightType), norm(p + "ffn_norm.weight"),
                          matrix(p + "ffn_gate.weight", d, ff, shape.weightType), matrix(p + "ffn_up.weight", d, ff, shape.weightType),
                          matrix(p + "ffn_down.weight", ff, d, shape.weightType)]
        }
        try w.write(to: path)
        return path
    }

    static func byteChar(_ b: UInt8) -> String {
        var next: UInt32 = 256
        for c in 0..<256 {
            let printable = (33...126).contains(c) || (161...172).contains(c) || (174...255).contains(c)
            if c == Int(b) { return String(Unicode.Scalar(printable ? UInt32(c) : next).map(Character.init) ?? " ") }
            if !printable { next += 1 }
        }
        return " "
    }

    /// Random blocks of `type` holding `count` elements.
    static func randomBlocks(_ type: GGMLType, _ count: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        var out: [UInt8] = []
        func half(_ f: Float) { withUnsafeBytes(of: Float16(f).bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        switch type {
        case .f32:
            for _ in 0..<count { withUnsafeBytes(of: Float(Double(Int(rng.next() % 2001) - 1000) / 20_000).bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        case .f16:
            for _ in 0..<count { half(Float(Double(Int(rng.next() % 2001) - 1000) / 20_000)) }
        case .q8_0:
            for _ in 0..<(count / 32) {
                half(0.0005)
                for _ in 0..<32 { out.append(UInt8(truncatingIfNeeded: rng.next())) }
            }
        case .q4_0:
            for _ in 0..<(count / 32) {
                half(0.006)
                for _ in 0..<16 { out.append(UInt8(truncatingIfNeeded: rng.next())) }
            }
        case .q5_0:
            // A type the engine does not compute with, for tests of that error.
            for _ in 0..<(count / 32) {
                half(0.006)
                for _ in 0..<20 { out.append(UInt8(truncatingIfNeeded: rng.next())) }
            }
        default: // q4_1
            for _ in 0..<(count / 32) {
                half(0.006)
                half(-0.045)
                for _ in 0..<16 { out.append(UInt8(truncatingIfNeeded: rng.next())) }
            }
        }
        return out
    }
}

/// Random quantized blocks, for kernel tests.
public enum TinyModelBlocks {
    public static func random(_ type: GGMLType, _ count: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        TinyModel.randomBlocks(type, count, &rng)
    }
}
