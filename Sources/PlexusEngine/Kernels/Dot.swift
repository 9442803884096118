/// Dot products of one weight row with a quantized activation vector.
///
/// Integer block sums are exact in any order, so they are left to the
/// optimiser; the float accumulation over blocks is sequential with the
/// reference engine's grouping of each expression, so results are
/// bit-for-bit those of its portable kernels.
enum Dot {
    @inline(__always)
    static func blockSum(_ w: UnsafePointer<Int8>, _ x: UnsafePointer<Int8>) -> Int32 {
        var t: Int32 = 0
        for j in 0..<32 { t &+= Int32(w[j]) &* Int32(x[j]) }
        return t
    }

    /// Σ over blocks for a Q4_1 row against Q8_1 activations:
    /// sum += (dx·dy)·Σq + mx·sy.
    static func q4_1(_ row: UnsafeRawPointer, _ x: QuantizedVectorView, blocks: Int) -> Float {
        var sum: Float = 0
        return withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { w in
            let wp = w.baseAddress!
            for b in 0..<blocks {
                let p = row + b * Blocks.q4_1Bytes
                let d = Blocks.half(p, 0), m = Blocks.half(p, 2)
                let qs = (p + 4).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    wp[j] = Int8(qs[j] & 0x0F)
                    wp[j + 16] = Int8(qs[j] >> 4)
                }
                let si = blockSum(wp, x.q + 32 * b)
                sum += (d * x.d[b]) * Float(si) + m * x.s[b]
            }
            return sum
        }
    }

    /// Σ over blocks for a Q4_0 row against Q8_0 activations: sum += Σq·dx·dy.
    static func q4_0(_ row: UnsafeRawPointer, _ x: QuantizedVectorView, blocks: Int) -> Float {
        var sum: Float = 0
        return withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { w in
            let wp = w.baseAddress!
            for b in 0..<blocks {
                let p = row + b * Blocks.q4_0Bytes
                let d = Blocks.half(p, 0)
                let qs = (p + 2).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    wp[j] = Int8(qs[j] & 0x0F) - 8
                    wp[j + 16] = Int8(qs[j] >> 4) - 8
                }
                sum += Float(blockSum(wp, x.q + 32 * b)) * d * x.d[b]
            }
            return sum
        }
    }

    /// Σ over blocks for a Q8_0 row against Q8_0 activations: sum += Σq·(dx·dy).
    static func q8_0(_ row: UnsafeRawPointer, _ x: QuantizedVectorView, blocks: Int) -> Float {
        var sum: Float = 0
        for b in 0..<blocks {
            let p = row + b * Blocks.q8_0Bytes
            let d = Blocks.half(p, 0)
            sum += Float(blockSum((p + 2).assumingMemoryBound(to: Int8.self), x.q + 32 * b)) * (d * x.d[b])
        }
        return sum
    }

    /// Float dot with a double accumulator.
    static func f32(_ row: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var sum: Double = 0
        for i in 0..<count { sum += Double(row[i] * x[i]) }
        return Float(sum)
    }
}

/// Read-only access to a quantized vector's storage during a matmul.
struct QuantizedVectorView {
    let q: UnsafePointer<Int8>
    let d: UnsafePointer<Float>
    let s: UnsafePointer<Float>
}

/// The reference engine's vectorised exp and SiLU (no fused multiply-add),
/// evaluated lane by lane: max error about 1.5 ulp, identical results.
enum FastMath {
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let r: Float = 0x1.8p23
        let z = x * 0x1.715476p+0 + r
        let n = z - r
        let b = (x - n * 0x1.62e4p-1) - n * 0x1.7f7d1cp-20
        let e = z.bitPattern &<< 23
        let k = Float(bitPattern: e &+ Float(1).bitPattern)
        let u = b * b
        let j = ((0x1.0e4020p-7 * b + 0x1.573e2ep-5) * u + (0x1.555e66p-3 * b + 0x1.fffdb6p-2)) * u + 0x1.ffffecp-1 * b
        if !(abs(n) > 126) { return j * k + k }
        let g: UInt32 = n <= 0 ? 0x8200_0000 : 0
        let s1 = Float(bitPattern: g &+ 0x7F00_0000)
        let s2 = Float(bitPattern: e &- g)
        if abs(n) > 192 { return s1 * s1 }
        return (s2 * j + s2) * s1
    }

    @inline(__always)
    static func silu(_ x: Float) -> Float {
        x / (1 + exp(0 - x))
    }
}
