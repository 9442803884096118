import Foundation
import PlexusCore

/// The KV cache and scratch buffers of one sequence, allocated once.
///
/// Keys and values are stored as f16, as the reference engine stores them;
/// the query is rounded through f16 before the dot with the keys for the
/// same reason. Everything runs in a fixed order, so results do not depend on
/// the thread count.
public final class InferenceState {
    public let model: LlamaModel
    /// Tokens the cache can hold.
    public let capacity: Int
    /// Positions filled so far (for the layers this state runs).
    public private(set) var length = 0
    let threads: Int

    // (layer, capacity, kv_dim)
    var keys: [[Float16]]
    var values: [[Float16]]
    var x: [Float], xb: [Float], xb2: [Float], q: [Float], k: [Float], v: [Float]
    var hb: [Float], hb2: [Float], att: [Float]
    /// Logits after the last `forward`.
    public private(set) var logits: [Float]

    /// A state for up to `capacity` tokens (at most the model's context).
    public init(model: LlamaModel, capacity: Int? = nil, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
        let c = model.config
        let cap = capacity ?? min(c.contextLength, 4096)
        guard cap >= 1, cap <= c.contextLength else {
            throw PlexusError(.outOfRange, "context \(cap) is outside 1...\(c.contextLength)")
        }
        self.model = model
        self.capacity = cap
        self.threads = max(1, threads)
        keys = Array(repeating: [Float16](repeating: 0, count: cap * c.kvDim), count: c.layers)
        values = keys
        x = [Float](repeating: 0, count: c.embedding)
        xb = x; xb2 = x; q = x
        k = [Float](repeating: 0, count: c.kvDim); v = k
        hb = [Float](repeating: 0, count: c.feedForward); hb2 = hb
        att = [Float](repeating: 0, count: cap)
        logits = [Float](repeating: 0, count: c.vocabSize)
    }

    /// Forgets everything after the first `count` positions.
    public func truncate(to count: Int) { length = max(0, min(length, count)) }

    /// Runs token `token` at the next position through every layer and returns the logits.
    @discardableResult
    public func forward(_ token: TokenID) throws -> [Float] {
        var h = try embed(token)
        try runLayers(&h, layers: 0..<model.config.layers)
        computeLogits(h)
        return logits
    }

    /// The embedding of a token: the hidden state entering layer 0.
    public func embed(_ token: TokenID) throws -> [Float] {
        guard token >= 0, Int(token) < model.config.vocabSize else {
            throw PlexusError(.outOfRange, "token \(token) is outside the vocabulary")
        }
        var h = [Float](repeating: 0, count: model.config.embedding)
        h.withUnsafeMutableBufferPointer { model.embedding.row(Int(token), into: $0.baseAddress!) }
        return h
    }

    /// Runs `hidden` (the state at the next position) through `layers`, updating
    /// their KV cache, and advances the position. Used whole, or split across
    /// nodes with the hidden state handed from one range to the next.
    public func runLayers(_ hidden: inout [Float], layers: Range<Int>) throws {
        let c = model.config
        guard layers.lowerBound >= 0, layers.upperBound <= c.layers else {
            throw PlexusError(.outOfRange, "layers \(layers) are outside 0..<\(c.layers)")
        }
        guard hidden.count == c.embedding else { throw PlexusError(.malformed, "hidden state has \(hidden.count) values, expected \(c.embedding)") }
        guard length < capacity else {
            throw PlexusError(.outOfRange, "the sequence reached the context limit of \(capacity) tokens")
        }
        let pos = length
        x = hidden
        for l in layers { layer(l, pos: pos) }
        hidden = x
        length += 1
    }

    /// Final norm and output projection of a hidden state into `logits`.
    public func computeLogits(_ hidden: [Float]) {
        let c = model.config
        xb = hidden
        Self.rmsNorm(&xb, model.outputNorm, c.normEpsilon)
        xb.withUnsafeBufferPointer { xp in
            logits.withUnsafeMutableBufferPointer { lp in
                model.output.multiply(xp.baseAddress!, into: lp.baseAddress!, threads: threads)
            }
        }
    }

    static func rmsNorm(_ v: inout [Float], _ w: [Float], _ eps: Float) {
        var sum: Double = 0
        for e in v { sum += Double(e * e) }
        let mean = Float(sum / Double(v.count))
        let scale = 1 / (mean + eps).squareRoot()
        for i in 0..<v.count { v[i] = (v[i] * scale) * w[i] }
    }

    static func matmul(_ w: WeightMatrix, _ input: [Float], _ out: inout [Float], _ threads: Int) {
        input.withUnsafeBufferPointer { ip in
            out.withUnsafeMutableBufferPointer { op in
                w.multiply(ip.baseAddress!, into: op.baseAddress!, threads: threads)
            }
        }
    }

    /// Rotates pairs (2i, 2i+1) of each head by pos·base^(−2i/d), with the
    /// angle advanced by repeated multiplication as the reference does.
    static func rope(_ v: inout [Float], heads: Int, headDim: Int, ropeDims: Int, pos: Int, base: Float) {
        let thetaScale = powf(base, -2 / Float(ropeDims))
        for h in 0..<heads {
            var theta = Float(pos)
            var i = 0
            while i < ropeDims {
                let cs = cosf(theta), sn = sinf(theta)
                let o = h * headDim + i
                let a = v[o], b = v[o + 1]
                v[o] = a * cs - b * sn
                v[o + 1] = a * sn + b * cs
                theta *= thetaScale
                i += 2
            }
        }
    }

    func layer(_ l: Int, pos: Int) {
        let c = model.config
        let L = model.layers[l]
        // Attention.
        xb = x
        Self.rmsNorm(&xb, L.attnNorm, c.normEpsilon)
        Self.matmul(L.wq, xb, &q, threads)
        Self.matmul(L.wk, xb, &k, threads)
        Self.matmul(L.wv, xb, &v, threads)
        Self.rope(&q, heads: c.heads, headDim: c.headDim, ropeDims: c.ropeDims, pos: pos, base: c.ropeBase)
        Self.rope(&k, heads: c.kvHeads, headDim: c.headDim, ropeDims: c.ropeDims, pos: pos, base: c.ropeBase)
        let kvDim = c.kvDim, hd = c.headDim
        for i in 0..<kvDim {
            keys[l][pos * kvDim + i] = Float16(k[i])
            values[l][pos * kvDim + i] = Float16(v[i])
        }
        let group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let n = pos + 1
        keys[l].withUnsafeBufferPointer { kp in
        values[l].withUnsafeBufferPointer { vp in
        att.withUnsafeMutableBufferPointer { ap in
            for h in 0..<c.heads {
                let kvh = h / group
                // Scores: the query rounded to f16, products summed in double (as the reference does).
                var qh = [Float](repeating: 0, count: hd)
                for d in 0..<hd { qh[d] = Float(Float16(q[h * hd + d])) }
                var maxScore = -Float.infinity
                for t in 0..<n {
                    var sum: Double = 0
                    let base = t * kvDim + kvh * hd
                    for d in 0..<hd { sum += Double(Float(kp[base + d]) * qh[d]) }
                    let s = Float(sum) * scale
                    ap[t] = s
                    if s > maxScore { maxScore = s }
                }
                // Softmax with the reference's exp, summed in groups of four.
                var total: Double = 0
                var t = 0
                while t < n {
                    var v = SIMD4<Float>(repeating: 0)
                    for i in 0..<4 where t + i < n {
                        v[i] = FastMath.exp(ap[t + i] - maxScore)
                        ap[t + i] = v[i]
                    }
                    total += Double((v[0] + v[1]) + (v[2] + v[3]))
                    t += 4
                }
                let inv = Float(1 / total)
                for t in 0..<n { ap[t] = Float(Float16(ap[t] * inv)) }
                for d in 0..<hd {
                    var sum: Double = 0
                    for t in 0..<n { sum += Double(Float(vp[t * kvDim + kvh * hd + d]) * ap[t]) }
                    xb2[h * hd + d] = Float(sum)
                }
            }
        }
        }
        }
        Self.matmul(L.wo, xb2, &xb, threads)
        for i in 0..<c.embedding { x[i] += xb[i] }
        // Feed-forward (SwiGLU).
        xb = x
        Self.rmsNorm(&xb, L.ffnNorm, c.normEpsilon)
        Self.matmul(L.gate, xb, &hb, threads)
        Self.matmul(L.up, xb, &hb2, threads)
        for i in 0..<c.feedForward { hb[i] = FastMath.silu(hb[i]) * hb2[i] }
        Self.matmul(L.down, hb, &xb, threads)
        for i in 0..<c.embedding { x[i] += xb[i] }
    }
}
