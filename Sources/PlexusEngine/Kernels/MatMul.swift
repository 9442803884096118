import CPlexusKernels
import Dispatch
import PlexusCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// The rows repacked eight at a time for the vector kernels (quantized
    /// types with a multiple of eight rows); the mapped pages are then released.
    let packed: PackedWeights?

    init(_ file: GGUFFile, _ info: GGUFTensorInfo, arena: PackedArena? = nil) throws {
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
        if let kt = Self.kernelType(type), rows % 8 == 0, rows > 0 {
            let blocks = cols / Blocks.elements
            let p = try arena?.allocate(rowBytes * rows) ?? PackedWeights(bytes: rowBytes * rows)
            plx_repack8(kt, b.assumingMemoryBound(to: UInt8.self), rowBytes, Int32(blocks), Int32(rows / 8), p.base)
            file.file.release(data)
            packed = p
        } else {
            packed = nil
        }
    }

    /// The activation format this weight type is dotted with.
    var needsQ8_1: Bool { type == .q4_1 }

    /// Row `r` dequantized into `out` (length `cols`).
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        if let packed, let kt = kernelType {
            plx_unpack_row(kt, packed.base, Int32(cols / Blocks.elements), Int32(r), out)
        } else {
            Blocks.dequantize(type, base + r * rowBytes, count: cols, into: out)
        }
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
    var kernelType: Int32? { Self.kernelType(type) }

    static func kernelType(_ type: GGMLType) -> Int32? {
        switch type {
        case .q8_0: Int32(PLX_Q8_0)
        case .q4_0: Int32(PLX_Q4_0)
        case .q4_1: Int32(PLX_Q4_1)
        default: nil
        }
    }

    /// `out[t * outStride + r] = W[r] · X[t]` for `rows` and every token of
    /// `batch`; any split of the rows gives the same bits.
    /// `level` caps the instruction set (0 portable, 1 AVX2, 2 AVX-VNNI), for tests.
    func compute(rows range: Range<Int>, _ batch: ActivationBatch, into out: UnsafeMutablePointer<Float>, outStride: Int, level: Int32 = KernelPath.level) {
        guard !range.isEmpty else { return }
        precondition(batch.cols == cols)
        if let packed, let kt = kernelType {
            precondition(range.lowerBound % 8 == 0 && range.upperBound % 8 == 0)
            plx_matmul_packed(kt, packed.base, Int32(cols / Blocks.elements), Int32(range.lowerBound), Int32(range.upperBound),
                              batch.q, batch.d, batch.s, batch.sums, Int32(batch.tokens), out, outStride, level)
            return
        }
        if let kt = kernelType {
            plx_matmul(kt, base.assumingMemoryBound(to: UInt8.self), rowBytes, Int32(cols / Blocks.elements),
                       Int32(range.lowerBound), Int32(range.upperBound), batch.q, batch.d, batch.s,
                       Int32(batch.tokens), out, outStride)
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
    let sums: UnsafeMutablePointer<Int32>

    init(capacity: Int, cols: Int) {
        self.capacity = capacity
        self.cols = cols
        x = .allocate(capacity: capacity * cols)
        q = .allocate(capacity: capacity * cols)
        d = .allocate(capacity: capacity * cols / Blocks.elements + 1)
        s = .allocate(capacity: capacity * cols / Blocks.elements + 1)
        sums = .allocate(capacity: capacity * cols / Blocks.elements + 1)
    }

    func deallocate() {
        x.deallocate(); q.deallocate(); d.deallocate(); s.deallocate(); sums.deallocate()
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
            plx_quantize_q8(x, Int32(tokens * cols), q, d, s, sums)
        }
    }

    /// Quantizes columns `range` (whole blocks) of token `t`'s row; with
    /// `finish(tokens:)` after all parts, the same as `quantize(tokens:)`.
    func quantize(token t: Int, columns range: Range<Int>) {
        let o = t * cols + range.lowerBound
        plx_quantize_q8(x + o, Int32(range.count), q + o, d + o / Blocks.elements, s + o / Blocks.elements, sums + o / Blocks.elements)
    }

    /// Marks the first `tokens` rows as quantized (by parts).
    func finish(tokens: Int) {
        precondition(tokens <= capacity)
        self.tokens = tokens
    }
}

/// Repacked weights: their own allocation, or a slice of a model's arena
/// (which the slice keeps alive).
final class PackedWeights: @unchecked Sendable {
    // Invariant: written once while the owning matrix is built, read-only after.
    let base: UnsafeMutablePointer<UInt8>
    private let arena: PackedArena?

    init(bytes: Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes), alignment: 64).assumingMemoryBound(to: UInt8.self)
        arena = nil
    }

    init(slice: UnsafeMutablePointer<UInt8>, of arena: PackedArena) {
        base = slice
        self.arena = arena
    }

    deinit { if arena == nil { base.deallocate() } }
}

/// One anonymous mapping for all of a model's repacked weights, backed by
/// huge pages where the system allows (the matrix kernels stream through
/// all of it for every token, and 4 KiB pages cost TLB misses).
final class PackedArena: @unchecked Sendable {
    // Invariant: `used` only grows, under the single-threaded model load.
    private let base: UnsafeMutableRawPointer
    private let size: Int
    private var used = 0

    init(capacity: Int) throws {
        let huge = 2 << 20
        size = max(huge, (capacity + huge - 1) / huge * huge)
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw PlexusError(.io, "cannot reserve \(size) bytes for the model's weights")
        }
        #if os(Linux)
        _ = madvise(p, size, Int32(MADV_HUGEPAGE))
        #endif
        base = p
    }

    func allocate(_ bytes: Int) throws -> PackedWeights {
        let start = (used + 63) / 64 * 64
        guard start + bytes <= size else { throw PlexusError(.badModel, "the model's weights outgrow their arena") }
        used = start + bytes
        return PackedWeights(slice: (base + start).assumingMemoryBound(to: UInt8.self), of: self)
    }

    deinit { munmap(base, size) }
}
