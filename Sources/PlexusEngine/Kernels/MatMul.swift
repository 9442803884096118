import CPlexusKernels
import Dispatch
import PlexusCore

/// A weight matrix in a GGUF file: `rows` output rows of `cols` inputs each
/// (ggml shape `[cols, rows]`), in one of the supported block types.
public struct WeightMatrix: @unchecked Sendable {
    // Invariant: `base` points into a read-only mapping kept alive by `owner`.
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    let base: UnsafeRawPointer
    let rowBytes: Int
    let owner: AnyObject

    init(_ file: GGUFFile, _ info: GGUFTensorInfo) throws {
        guard let type = info.type, [.f32, .f16, .q8_0, .q4_0, .q4_1].contains(type) else {
            throw PlexusError(.unsupported, "tensor \(info.name) has type \(info.type.map { "\($0)" } ?? "code \(info.typeCode)"), which the engine does not compute with (F32, F16, Q8_0, Q4_0, Q4_1 are)")
        }
        guard info.shape.count <= 2 else { throw PlexusError(.badModel, "tensor \(info.name) is not a matrix") }
        self.type = type
        cols = info.shape[0]
        rows = info.shape.count == 2 ? info.shape[1] : 1
        guard cols % type.blockLayout.elements == 0, let rb = type.byteCount(elements: cols) else {
            throw PlexusError(.badModel, "tensor \(info.name) rows are not whole blocks")
        }
        rowBytes = rb
        let data = try file.data(of: info)
        guard let b = data.baseAddress, data.count == rb * rows else {
            throw PlexusError(.badModel, "tensor \(info.name) has \(data.count) bytes, expected \(rb * rows)")
        }
        base = b
        owner = file.file
    }

    /// The activation format this weight type is dotted with.
    var needsQ8_1: Bool { type == .q4_1 }

    /// Row `r` dequantized into `out` (length `cols`).
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        Blocks.dequantize(type, base + r * rowBytes, count: cols, into: out)
    }

    /// `out[r] = W[r] · x` for every row, on `threads` threads. Each row is
    /// computed whole by one thread, so the result does not depend on `threads`.
    public func multiply(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, threads: Int) {
        let batch = ActivationBatch(capacity: 1, cols: cols)
        defer { batch.deallocate() }
        batch.load(x, tokens: 1)
        WorkerPool.shared(threads: threads).run { part, parts in
            compute(rows: WorkerPool.share(rows, part: part, parts: parts), batch, into: out, outStride: rows)
        }
    }

    /// The C kernel's code for this type, if it is a quantized one.
    var kernelType: Int32? {
        switch type {
        case .q8_0: Int32(PLX_Q8_0)
        case .q4_0: Int32(PLX_Q4_0)
        case .q4_1: Int32(PLX_Q4_1)
        default: nil
        }
    }

    /// `out[t * outStride + r] = W[r] · X[t]` for `rows` and every token of
    /// `batch`; any split of the rows gives the same bits.
    func compute(rows range: Range<Int>, _ batch: ActivationBatch, into out: UnsafeMutablePointer<Float>, outStride: Int, vectorized: Bool = true) {
        guard !range.isEmpty else { return }
        precondition(batch.cols == cols)
        if let kt = kernelType {
            plx_matmul(kt, base.assumingMemoryBound(to: UInt8.self), rowBytes, Int32(cols / Blocks.elements),
                       Int32(range.lowerBound), Int32(range.upperBound), batch.q, batch.d, batch.s,
                       Int32(batch.tokens), out, outStride, vectorized ? 1 : 0)
            return
        }
        for t in 0..<batch.tokens {
            let x = UnsafePointer(batch.x + t * cols)
            if type == .f32 {
                let w = base.assumingMemoryBound(to: Float.self)
                for r in range { out[t * outStride + r] = Dot.f32(w + r * cols, x, count: cols) }
            } else {
                // F16 weights are rare here (norms are F32); dequantize a row at a time.
                withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { tmp in
                    for r in range {
                        row(r, into: tmp.baseAddress!)
                        out[t * outStride + r] = Dot.f32(tmp.baseAddress!, x, count: cols)
                    }
                }
            }
        }
    }
}

/// The activations of a batch of tokens, as floats and quantized to 8 bits
/// (with the Q8_1 sums, which the Q8_0 kernels ignore), in buffers allocated once.
final class ActivationBatch {
    let capacity: Int
    let cols: Int
    private(set) var tokens = 0
    let x: UnsafeMutablePointer<Float>
    let q: UnsafeMutablePointer<Int8>
    let d: UnsafeMutablePointer<Float>
    let s: UnsafeMutablePointer<Float>

    init(capacity: Int, cols: Int) {
        self.capacity = capacity
        self.cols = cols
        x = .allocate(capacity: capacity * cols)
        q = .allocate(capacity: capacity * cols)
        d = .allocate(capacity: capacity * cols / Blocks.elements + 1)
        s = .allocate(capacity: capacity * cols / Blocks.elements + 1)
    }

    func deallocate() {
        x.deallocate(); q.deallocate(); d.deallocate(); s.deallocate()
    }

    /// Copies `tokens` rows from `src` and quantizes them.
    func load(_ src: UnsafePointer<Float>, tokens: Int) {
        precondition(tokens <= capacity)
        x.update(from: src, count: tokens * cols)
        quantize(tokens: tokens)
    }

    /// Quantizes the first `tokens` rows already in `x`.
    func quantize(tokens: Int) {
        precondition(tokens <= capacity)
        self.tokens = tokens
        if cols % Blocks.elements == 0 {
            plx_quantize_q8(x, Int32(tokens * cols), q, d, s)
        }
    }
}
