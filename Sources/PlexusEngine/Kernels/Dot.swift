/// Dot products of one weight row with a quantized activation vector.
///
/// Each block's integer dot is split into eight partial sums of four
/// products (elements 4k…4k+3), accumulated per lane in floats and summed
/// pairwise at the end: the order of the reference engine's 8-lane kernels,
/// so results are reproducible and close to the reference bit for bit.
/// Written as plain loops over pointers so the optimiser can vectorise them.
enum Dot {
    @inline(__always)
    static func hsum(_ a: SIMD8<Float>) -> Float {
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }

    /// Lane sums of 32 weights `w` (already unpacked to Int8) against `x`.
    @inline(__always)
    static func lanes(_ w: UnsafePointer<Int8>, _ x: UnsafePointer<Int8>) -> SIMD8<Float> {
        var s = SIMD8<Int32>()
        for k in 0..<8 {
            var t: Int32 = 0
            for j in 0..<4 { t &+= Int32(w[4 * k + j]) &* Int32(x[4 * k + j]) }
            s[k] = t
        }
        return SIMD8<Float>(Float(s[0]), Float(s[1]), Float(s[2]), Float(s[3]),
                            Float(s[4]), Float(s[5]), Float(s[6]), Float(s[7]))
    }

    /// Σ over blocks for a Q4_1 row against Q8_1 activations.
    static func q4_1(_ row: UnsafeRawPointer, _ x: QuantizedVectorView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var summs: Float = 0
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
                acc += lanes(wp, x.q + 32 * b) * (d * x.d[b])
                summs += m * x.s[b]
            }
            return hsum(acc) + summs
        }
    }

    /// Σ over blocks for a Q4_0 row against Q8_0 activations.
    static func q4_0(_ row: UnsafeRawPointer, _ x: QuantizedVectorView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
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
                acc += lanes(wp, x.q + 32 * b) * (d * x.d[b])
            }
            return hsum(acc)
        }
    }

    /// Σ over blocks for a Q8_0 row against Q8_0 activations.
    static func q8_0(_ row: UnsafeRawPointer, _ x: QuantizedVectorView, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        for b in 0..<blocks {
            let p = row + b * Blocks.q8_0Bytes
            let d = Blocks.half(p, 0)
            acc += lanes((p + 2).assumingMemoryBound(to: Int8.self), x.q + 32 * b) * (d * x.d[b])
        }
        return hsum(acc)
    }

    /// Plain float dot, 8 lanes.
    static func f32(_ row: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            let a = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            acc += a * b
            i += 8
        }
        var tail: Float = 0
        while i < count { tail += row[i] * x[i]; i += 1 }
        return hsum(acc) + tail
    }
}

/// Read-only access to a quantized vector's storage during a matmul.
struct QuantizedVectorView {
    let q: UnsafePointer<Int8>
    let d: UnsafePointer<Float>
    let s: UnsafePointer<Float>
}
