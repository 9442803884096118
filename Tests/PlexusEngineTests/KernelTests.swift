import Foundation
import CPlexusKernels
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

@Suite struct KernelTests {
    /// The integer kernels agree with dequantize-then-float-dot on every real weight type.
    @Test func quantizedMatmulMatchesFloatReference() throws {
        let model = try LlamaModel(path: TestModels.smolLM2())
        var rng = SeededGenerator(seed: 3)
        for w in [model.layers[0].wq, model.layers[3].down, model.embedding] {
            let x = (0..<w.cols).map { _ in Float(Int(rng.next() % 2001) - 1000) / 500 }
            var out = [Float](repeating: 0, count: w.rows)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { w.multiply(xp.baseAddress!, into: $0.baseAddress!, threads: 2) } }
            var row = [Float](repeating: 0, count: w.cols)
            var worst: Float = 0, scale: Float = 0
            for r in stride(from: 0, to: w.rows, by: max(1, w.rows / 64)) {
                row.withUnsafeMutableBufferPointer { w.row(r, into: $0.baseAddress!) }
                var ref: Double = 0
                for c in 0..<w.cols { ref += Double(row[c]) * Double(x[c]) }
                worst = max(worst, abs(Float(ref) - out[r]))
                scale = max(scale, abs(Float(ref)))
            }
            #expect(worst <= 0.02 * scale + 1e-3, "\(w.type): worst error \(worst) against scale \(scale)")
        }
    }
}

@Suite struct VectorKernelTests {
    /// The C kernels (vectorised or not) give exactly the bits of the Swift reference kernels.
    @Test(arguments: [GGMLType.q4_1, .q4_0, .q8_0])
    func cKernelsMatchTheSwiftReferenceBitForBit(type: GGMLType) throws {
        var rng = SeededGenerator(seed: 11)
        let cols = 576, rows = 40
        let data = TinyModelBlocks.random(type, cols * rows, &rng)
        let x = (0..<cols).map { _ in Float(Int(rng.next() % 20_001) - 10_000) / 3_000 }
        let qx = x.withUnsafeBufferPointer { QuantizedVector($0.baseAddress!, count: cols) }
        let rowBytes = type.byteCount(elements: cols)!
        data.withUnsafeBytes { raw in
            qx.q.withUnsafeBufferPointer { q in qx.d.withUnsafeBufferPointer { d in qx.s.withUnsafeBufferPointer { s in
                let view = QuantizedVectorView(q: q.baseAddress!, d: d.baseAddress!, s: s.baseAddress!)
                for r in 0..<rows {
                    let p = raw.baseAddress! + r * rowBytes
                    let reference: Float, fast: Float
                    switch type {
                    case .q4_1:
                        reference = Dot.q4_1(p, view, blocks: cols / 32)
                        fast = plx_dot_q4_1_q8_1(p.assumingMemoryBound(to: UInt8.self), q.baseAddress!, d.baseAddress!, s.baseAddress!, Int32(cols / 32))
                    case .q4_0:
                        reference = Dot.q4_0(p, view, blocks: cols / 32)
                        fast = plx_dot_q4_0_q8_0(p.assumingMemoryBound(to: UInt8.self), q.baseAddress!, d.baseAddress!, Int32(cols / 32))
                    default:
                        reference = Dot.q8_0(p, view, blocks: cols / 32)
                        fast = plx_dot_q8_0_q8_0(p.assumingMemoryBound(to: UInt8.self), q.baseAddress!, d.baseAddress!, Int32(cols / 32))
                    }
                    #expect(reference.bitPattern == fast.bitPattern, "row \(r): \(reference) vs \(fast)")
                }
            } } }
        }
    }
}
