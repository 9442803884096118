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
        for w in [model.layers[0]!.wq, model.layers[3]!.down, model.embedding] {
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

/// The repacked matrix kernels, the vector quantizer, SiLU and f16 conversion:
/// every instruction-set level gives the bits of the portable code, which
/// gives the bits of the one-row reference kernels.
@Suite struct PackedKernelTests {
    @Test(arguments: [GGMLType.q4_1, .q4_0, .q8_0])
    func packedMatmulEqualsTheOneRowKernelsAtEveryLevel(type: GGMLType) throws {
        var rng = SeededGenerator(seed: 21)
        let cols = 576, rows = 48, tokens = 7
        let kt = WeightMatrix.kernelType(type)!
        let data = TinyModelBlocks.random(type, cols * rows, &rng)
        let rowBytes = type.byteCount(elements: cols)!
        let packed = [UInt8](unsafeUninitializedCapacity: data.count) { buf, n in
            data.withUnsafeBufferPointer { plx_repack8(kt, $0.baseAddress!, rowBytes, Int32(cols / 32), Int32(rows / 8), buf.baseAddress!) }
            n = data.count
        }
        let batch = ActivationBatch(capacity: tokens, cols: cols)
        defer { batch.deallocate() }
        for i in 0..<(tokens * cols) { batch.x[i] = Float(Int(rng.next() % 20_001) - 10_000) / 3_000 }
        batch.quantize(tokens: tokens)
        var reference = [Float](repeating: 0, count: tokens * rows)
        data.withUnsafeBufferPointer { d in
            for t in 0..<tokens {
                for r in 0..<rows {
                    let p = d.baseAddress! + r * rowBytes
                    let q = batch.q + t * cols, sd = batch.d + t * cols / 32, ss = batch.s + t * cols / 32
                    reference[t * rows + r] = switch type {
                    case .q4_1: plx_dot_q4_1_q8_1(p, q, sd, ss, Int32(cols / 32))
                    case .q4_0: plx_dot_q4_0_q8_0(p, q, sd, Int32(cols / 32))
                    default: plx_dot_q8_0_q8_0(p, q, sd, Int32(cols / 32))
                    }
                }
            }
        }
        for level: Int32 in [0, 1, 2] {
            var out = [Float](repeating: .nan, count: tokens * rows)
            packed.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    // Two row ranges, as two threads would split them.
                    for range in [0..<24, 24..<48] {
                        plx_matmul_packed(kt, p.baseAddress!, Int32(cols / 32), Int32(range.lowerBound), Int32(range.upperBound),
                                          batch.q, batch.d, batch.s, batch.sums, Int32(tokens), o.baseAddress!, rows, level)
                    }
                }
            }
            #expect(out.map(\.bitPattern) == reference.map(\.bitPattern), "level \(level)")
        }
        // Unpacking a row gives the dequantized original row.
        var a = [Float](repeating: 0, count: cols), b = a
        for r in [0, 7, 8, 47] {
            packed.withUnsafeBufferPointer { p in a.withUnsafeMutableBufferPointer { plx_unpack_row(kt, p.baseAddress!, Int32(cols / 32), Int32(r), $0.baseAddress!) } }
            data.withUnsafeBytes { d in b.withUnsafeMutableBufferPointer { Blocks.dequantize(type, d.baseAddress! + r * rowBytes, count: cols, into: $0.baseAddress!) } }
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        }
    }

    @Test func vectorQuantizeSiluAndHalfConversionMatchThePortableCode() {
        var rng = SeededGenerator(seed: 5)
        let n = 32 * 40
        // Values across many magnitudes, with exact ties for the rounding.
        var x = (0..<n).map { i -> Float in
            let m = Float(Int(rng.next() % 2_000_001) - 1_000_000) / 1_000
            return i % 97 == 0 ? 0 : m * powf(2, Float(Int(rng.next() % 40)) - 20)
        }
        for i in stride(from: 32, to: 64, by: 1) { x[i] = Float(i - 48) * 0.5 }  // amax 127/8·… ties at .5
        for level: Int32 in [0, 1] {
            var q = [Int8](repeating: 0, count: n), d = [Float](repeating: 0, count: n / 32)
            var s = d, sums = [Int32](repeating: 0, count: n / 32)
            plx_quantize_q8_level(x, Int32(n), &q, &d, &s, &sums, level)
            var q0 = q, d0 = d, s0 = s, sums0 = sums
            plx_quantize_q8_level(x, Int32(n), &q0, &d0, &s0, &sums0, 0)
            #expect(q == q0 && d.map(\.bitPattern) == d0.map(\.bitPattern) && s.map(\.bitPattern) == s0.map(\.bitPattern) && sums == sums0)
            // The portable quantizer is the Swift reference one.
            let ref = x.withUnsafeBufferPointer { QuantizedVector($0.baseAddress!, count: n) }
            #expect(q0 == ref.q && d0.map(\.bitPattern) == ref.d.map(\.bitPattern) && s0.map(\.bitPattern) == ref.s.map(\.bitPattern))
        }
        let g = (0..<n).map { _ in Float(Int(rng.next() % 4_000_001) - 2_000_000) / 10_000 } + [200, -200, 90, -90, .infinity, -.infinity, 0, -0.0]
        let u = (0..<g.count).map { _ in Float(Int(rng.next() % 2001) - 1000) / 100 }
        var v1 = g, v0 = g
        plx_silu_mul(&v1, u, Int32(g.count), 1)
        plx_silu_mul(&v0, u, Int32(g.count), 0)
        #expect(v1.map(\.bitPattern) == v0.map(\.bitPattern))
        for i in 0..<g.count { #expect(v0[i].bitPattern == (FastMath.silu(g[i]) * u[i]).bitPattern) }
        var h1 = [UInt16](repeating: 0, count: g.count), h0 = h1
        plx_to_half(g, &h1, Int32(g.count), 1)
        plx_to_half(g, &h0, Int32(g.count), 0)
        #expect(h1 == h0)
        for i in 0..<g.count { #expect(h0[i] == Float16(g[i]).bitPattern) }
        // Subnormal and boundary halves round as Float16 does.
        for bits in stride(from: UInt32(0x3300_0000), to: 0x4780_0000, by: 0x1_2345) {
            let f = Float(bitPattern: bits)
            #expect(plx_float_to_half(f) == Float16(f).bitPattern, "\(f)")
            #expect(plx_float_to_half(-f) == Float16(-f).bitPattern, "\(-f)")
        }
    }

    @Test func batchedPrefillEqualsOneTokenAtATime() throws {
        let model = try LlamaModel(path: TestModels.smolLM2())
        let prompt = try model.tokenizer.encode("Batches of the prompt must not change a single bit of the logits, whatever the split.", addBOS: false)
        let single = try InferenceState(model: model, capacity: 64, threads: 1)
        var a: [Float] = []
        for t in prompt { a = try single.forward(t) }
        let batched = try InferenceState(model: model, capacity: 64, threads: 2)
        let b = try batched.forward(prompt)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        // And the caches agree: the next token gives the same logits.
        #expect(try single.forward(42).map(\.bitPattern) == batched.forward(42).map(\.bitPattern))
    }
}
