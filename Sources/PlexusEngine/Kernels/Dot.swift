/// Dot products of one weight row with a quantized activation vector.
///
/// Each block's integer dot is split into eight partial sums of four
/// products, accumulated per lane in floats and summed pairwise at the end,
/// the same order as the reference engine's 8-lane AVX2 kernels, so that
/// results are reproducible and close to the reference bit for bit.
enum Dot {
    @inline(__always)
    static func laneSums(_ w: SIMD32<Int16>, _ x: SIMD32<Int16>) -> SIMD8<Int32> {
        let p = SIMD32<Int32>(truncatingIfNeeded: w) &* SIMD32<Int32>(truncatingIfNeeded: x)
        var out = SIMD8<Int32>()
        for k in 0..<8 { out[k] = p[4 * k] &+ p[4 * k + 1] &+ p[4 * k + 2] &+ p[4 * k + 3] }
        return out
    }

    @inline(__always)
    static func hsum(_ a: SIMD8<Float>) -> Float {
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }

    /// Σ over blocks for a Q4_1 row against Q8_1 activations.
    static func q4_1(_ row: UnsafeRawPointer, _ x: borrowing QuantizedVectorView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var summs: Float = 0
        for b in 0..<blocks {
            let p = row + b * Blocks.q4_1Bytes
            let d = Blocks.half(p, 0), m = Blocks.half(p, 2)
            var w = SIMD32<Int16>()
            for j in 0..<16 {
                let q = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                w[j] = Int16(q & 0x0F)
                w[j + 16] = Int16(q >> 4)
            }
            let sums = laneSums(w, x.block(b))
            let dd = d * x.d[b]
            summs += m * x.s[b]
            acc = acc + SIMD8<Float>(sums) * dd
        }
        return hsum(acc) + summs
    }

    /// Σ over blocks for a Q4_0 row against Q8_0 activations.
    static func q4_0(_ row: UnsafeRawPointer, _ x: borrowing QuantizedVectorView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let p = row + b * Blocks.q4_0Bytes
            let d = Blocks.half(p, 0)
            var w = SIMD32<Int16>()
            for j in 0..<16 {
                let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                w[j] = Int16(q & 0x0F) - 8
                w[j + 16] = Int16(q >> 4) - 8
            }
            acc = acc + SIMD8<Float>(laneSums(w, x.block(b))) * (d * x.d[b])
        }
        return hsum(acc)
    }

    /// Σ over blocks for a Q8_0 row against Q8_0 activations.
    static func q8_0(_ row: UnsafeRawPointer, _ x: borrowing QuantizedVectorView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let p = row + b * Blocks.q8_0Bytes
            let d = Blocks.half(p, 0)
            var w = SIMD32<Int16>()
            for j in 0..<32 { w[j] = Int16(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
            acc = acc + SIMD8<Float>(laneSums(w, x.block(b))) * (d * x.d[b])
        }
        return hsum(acc)
    }

    /// Plain float dot (F32 and F16 rows), 8 lanes.
    static func f32(_ row: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            let a = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            acc = acc + a * b
            i += 8
        }
        var tail: Float = 0
        while i < count { tail += row[i] * x[i]; i += 1 }
        return hsum(acc) + tail
    }
}

/// Read-only access to a quantized vector's storage during a matmul.
struct QuantizedVectorView: ~Copyable {
    let q: UnsafePointer<Int8>
    let d: UnsafePointer<Float>
    let s: UnsafePointer<Float>

    @inline(__always)
    func block(_ b: Int) -> SIMD32<Int16> {
        SIMD32<Int16>(truncatingIfNeeded: UnsafeRawPointer(q + 32 * b).loadUnaligned(as: SIMD32<Int8>.self))
    }
}
