/// Block layouts of the quantized types and their reference kernels.
///
/// A block stores 32 weights: `Q8_0 {f16 d; i8 q[32]}` (34 bytes, x = d·q),
/// `Q4_0 {f16 d; u8 q[16]}` (18 bytes, x = d·(nibble − 8)), and
/// `Q4_1 {f16 d; f16 m; u8 q[16]}` (20 bytes, x = d·nibble + m); in the 4-bit
/// types byte j holds element j in its low nibble and element j+16 in its
/// high nibble. Activations are quantized to Q8_0 (or Q8_1, which adds
/// s = d·Σq) and dotted with integer arithmetic, as the reference engine does.
public enum Blocks {
    public static let elements = 32
    public static let q8_0Bytes = 34
    public static let q4_0Bytes = 18
    public static let q4_1Bytes = 20

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// Dequantizes `count` elements of `type` starting at `src`.
    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            out.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            for i in 0..<count { out[i] = half(src, 2 * i) }
        case .q8_0:
            for b in 0..<(count / elements) {
                let p = src + b * q8_0Bytes
                let d = half(p, 0)
                for j in 0..<elements { out[b * elements + j] = d * Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
            }
        case .q4_0:
            for b in 0..<(count / elements) {
                let p = src + b * q4_0Bytes
                let d = half(p, 0)
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                    out[b * elements + j] = d * Float(Int(q & 0x0F) - 8)
                    out[b * elements + j + 16] = d * Float(Int(q >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<(count / elements) {
                let p = src + b * q4_1Bytes
                let d = half(p, 0), m = half(p, 2)
                for j in 0..<16 {
                    let q = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                    out[b * elements + j] = d * Float(q & 0x0F) + m
                    out[b * elements + j + 16] = d * Float(q >> 4) + m
                }
            }
        default:
            for i in 0..<count { out[i] = .nan }
        }
    }
}

/// An activation vector quantized to 8 bits in blocks of 32, with per-block
/// scale `d` and (for Q8_1) `s = d·Σq`, both rounded through f16 as stored.
///
/// d = max|x|/127, q = round-half-away(x · (1/d)): the reference engine's
/// portable rounding, so integer sums match it exactly.
public struct QuantizedVector {
    public var q: [Int8]
    public var d: [Float]
    public var s: [Float]

    public init(_ x: UnsafePointer<Float>, count: Int) {
        let nb = count / Blocks.elements
        q = [Int8](repeating: 0, count: count)
        d = [Float](repeating: 0, count: nb)
        s = [Float](repeating: 0, count: nb)
        for b in 0..<nb {
            var amax: Float = 0
            for j in 0..<Blocks.elements { amax = max(amax, abs(x[b * 32 + j])) }
            let scale = amax / 127
            let inv: Float = scale != 0 ? 1 / scale : 0
            var sum: Int32 = 0
            for j in 0..<Blocks.elements {
                let v = Int8((x[b * 32 + j] * inv).rounded(.toNearestOrAwayFromZero))
                q[b * 32 + j] = v
                sum += Int32(v)
            }
            d[b] = Float(Float16(scale))
            s[b] = Float(Float16(Float(sum) * scale))
        }
    }
}
