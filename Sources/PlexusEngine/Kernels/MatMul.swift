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
        let blocks = cols / Blocks.elements
        switch type {
        case .f32, .f16:
            if type == .f32 {
                let w = base.assumingMemoryBound(to: Float.self)
                forEachRow(threads) { r in out[r] = Dot.f32(w + r * cols, x, count: cols) }
            } else {
                // F16 weights are rare here (norms are F32); keep the path simple and serial.
                var tmp = [Float](repeating: 0, count: cols)
                for r in 0..<rows {
                    tmp.withUnsafeMutableBufferPointer { row(r, into: $0.baseAddress!) }
                    out[r] = tmp.withUnsafeBufferPointer { Dot.f32($0.baseAddress!, x, count: cols) }
                }
            }
        case .q8_0, .q4_0, .q4_1:
            let qx = QuantizedVector(x, count: cols)
            qx.q.withUnsafeBufferPointer { q in
                qx.d.withUnsafeBufferPointer { d in
                    qx.s.withUnsafeBufferPointer { s in
                        let qp = q.baseAddress!, dp = d.baseAddress!, sp = s.baseAddress!
                        let type = self.type, base = self.base, rowBytes = self.rowBytes
                        forEachRow(threads) { r in
                            let p = (base + r * rowBytes).assumingMemoryBound(to: UInt8.self)
                            switch type {
                            case .q4_1: out[r] = plx_dot_q4_1_q8_1(p, qp, dp, sp, Int32(blocks))
                            case .q4_0: out[r] = plx_dot_q4_0_q8_0(p, qp, dp, Int32(blocks))
                            default: out[r] = plx_dot_q8_0_q8_0(p, qp, dp, Int32(blocks))
                            }
                        }
                    }
                }
            }
        default:
            break
        }
    }

    private func forEachRow(_ threads: Int, _ body: (Int) -> Void) {
        let n = rows
        let t = max(1, min(threads, n / 16))
        if t == 1 {
            for r in 0..<n { body(r) }
            return
        }
        let per = (n + t - 1) / t
        withoutActuallyEscaping(body) { body in
            // Rows are disjoint between iterations; `body` writes only its own row.
            nonisolated(unsafe) let work = body
            DispatchQueue.concurrentPerform(iterations: t) { c in
                let lo = c * per, hi = min(n, lo + per)
                if lo < hi { for r in lo..<hi { work(r) } }
            }
        }
    }
}
