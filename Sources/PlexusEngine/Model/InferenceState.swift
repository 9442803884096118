import CPlexusKernels
import Foundation
import PlexusCore

/// The KV cache and scratch buffers of one sequence, allocated once.
///
/// Keys and values are stored as f16, as the reference engine stores them;
/// the query is rounded through f16 before the dot with the keys for the
/// same reason. Prompts run in batches (each weight row is read once for the
/// whole batch); every output value is computed whole by one thread in a
/// fixed order, so results depend neither on the batch size nor on the
/// thread count.
public final class InferenceState {
    public let model: LlamaModel
    /// Tokens the cache can hold.
    public let capacity: Int
    /// Positions filled so far (for the layers this state runs).
    public private(set) var length = 0
    let threads: Int
    let pool: WorkerPool
    /// Tokens run through the layers together.
    public static let batchLimit = 32

    // Keys of layer l, KV head h, dimension d, position t at
    // keys[l * layerKV + (h * headDim + d) * capacity + t]; values at
    // values[l * layerKV + t * kvDim + h * headDim + d].
    private let keys: UnsafeMutablePointer<UInt16>
    private let values: UnsafeMutablePointer<UInt16>
    private let layerKV: Int

    private let x: UnsafeMutablePointer<Float>  // residual stream, batch × dim
    private let normed: ActivationBatch  // batch × dim
    private let attended: ActivationBatch  // batch × dim
    private let hidden: ActivationBatch  // batch × ff
    private let q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
    private let up: UnsafeMutablePointer<Float>  // batch × ff
    private let proj: UnsafeMutablePointer<Float>  // batch × dim
    private let rotation: UnsafeMutablePointer<Float>  // batch × ropeDims (cos, sin per pair)
    private let scratch: UnsafeMutablePointer<Float>  // per thread: capacity + headDim
    private let scratchStride: Int
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
        self.threads = max(1, min(64, threads))
        pool = WorkerPool.shared(threads: self.threads)
        layerKV = cap * c.kvDim
        // calloc: pages of the cache are touched only as positions fill.
        keys = calloc(c.layers * layerKV, 2)!.assumingMemoryBound(to: UInt16.self)
        values = calloc(c.layers * layerKV, 2)!.assumingMemoryBound(to: UInt16.self)
        let b = Self.batchLimit
        x = .allocate(capacity: b * c.embedding)
        normed = ActivationBatch(capacity: b, cols: c.embedding)
        attended = ActivationBatch(capacity: b, cols: c.embedding)
        hidden = ActivationBatch(capacity: b, cols: c.feedForward)
        q = .allocate(capacity: b * c.embedding)
        k = .allocate(capacity: b * c.kvDim)
        v = .allocate(capacity: b * c.kvDim)
        up = .allocate(capacity: b * c.feedForward)
        proj = .allocate(capacity: b * c.embedding)
        rotation = .allocate(capacity: b * max(2, c.ropeDims))
        scratchStride = cap + c.headDim + c.kvDim
        scratch = .allocate(capacity: self.threads * scratchStride)
        logits = [Float](repeating: 0, count: c.vocabSize)
    }

    deinit {
        free(keys); free(values)
        x.deallocate(); normed.deallocate(); attended.deallocate(); hidden.deallocate()
        q.deallocate(); k.deallocate(); v.deallocate(); up.deallocate(); proj.deallocate()
        rotation.deallocate(); scratch.deallocate()
    }

    /// Forgets everything after the first `count` positions.
    public func truncate(to count: Int) { length = max(0, min(length, count)) }

    /// Runs `token` at the next position through every layer and returns the logits.
    @discardableResult
    public func forward(_ token: TokenID) throws -> [Float] {
        try forward([token])
    }

    /// Runs `tokens` at the next positions through every layer, in batches,
    /// and returns the logits after the last of them.
    @discardableResult
    public func forward(_ tokens: [TokenID]) throws -> [Float] {
        guard !tokens.isEmpty else { throw PlexusError(.malformed, "no tokens to run") }
        var h = try embed(tokens)
        try runLayers(&h, layers: 0..<model.config.layers)
        computeLogits(h)
        return logits
    }

    /// `forward`, adding the final hidden state of every position it runs to `commit`.
    @discardableResult
    public func forward(_ tokens: [TokenID], commit: inout CommitmentBuilder) throws -> [Float] {
        guard !tokens.isEmpty else { throw PlexusError(.malformed, "no tokens to run") }
        var h = try embed(tokens)
        try runLayers(&h, layers: 0..<model.config.layers)
        let normed = finalNormed(h)
        let dim = model.config.embedding
        normed.withUnsafeBufferPointer { np in
            for i in 0..<tokens.count { commit.add(UnsafeBufferPointer(rebasing: np[(i * dim)..<((i + 1) * dim)])) }
        }
        computeLogits(h)
        return logits
    }

    /// Every row of `hidden` through the final norm, as the output projection sees it.
    public func finalNormed(_ hidden: [Float]) -> [Float] {
        let c = model.config
        var out = hidden
        out.withUnsafeMutableBufferPointer { op in
            for i in 0..<(hidden.count / c.embedding) { Self.rmsNorm(op.baseAddress! + i * c.embedding, model.outputNorm, c.normEpsilon, count: c.embedding) }
        }
        return out
    }

    /// The logits of rows `rows` of `normed` (final-normed states, as `finalNormed` makes
    /// them), one after another: `batchLimit` rows share each pass over the output matrix,
    /// and each value equals what `computeLogits` gives for its row alone.
    public func logits(ofNormed normed: [Float], rows: Range<Int>) -> [Float] {
        let c = model.config, vocab = model.output.rows
        precondition(rows.lowerBound >= 0 && rows.upperBound * c.embedding <= normed.count)
        var out = [Float](repeating: 0, count: rows.count * vocab)
        let output = model.output, batch = self.normed
        normed.withUnsafeBufferPointer { np in
            out.withUnsafeMutableBufferPointer { lp in
                var done = 0
                while done < rows.count {
                    let n = min(Self.batchLimit, rows.count - done)
                    batch.x.update(from: np.baseAddress! + (rows.lowerBound + done) * c.embedding, count: n * c.embedding)
                    batch.quantize(tokens: n)
                    let dest = lp.baseAddress! + done * vocab
                    pool.run { part, parts in
                        output.compute(rows: WorkerPool.share(output.rows, part: part, parts: parts), batch, into: dest, outStride: vocab)
                    }
                    done += n
                }
            }
        }
        return out
    }

    /// The embedding of a token: the hidden state entering layer 0.
    public func embed(_ token: TokenID) throws -> [Float] {
        try embed([token])
    }

    /// The embeddings of `tokens`, one after another.
    public func embed(_ tokens: [TokenID]) throws -> [Float] {
        let dim = model.config.embedding
        for t in tokens where t < 0 || Int(t) >= model.config.vocabSize {
            throw PlexusError(.outOfRange, "token \(t) is outside the vocabulary")
        }
        var h = [Float](repeating: 0, count: dim * tokens.count)
        h.withUnsafeMutableBufferPointer { hp in
            for (i, t) in tokens.enumerated() { model.embedding.row(Int(t), into: hp.baseAddress! + i * dim) }
        }
        return h
    }

    /// Runs `hidden` (the states at the next positions, one after another)
    /// through `layers`, updating their KV cache, and advances the position.
    /// Used whole, or split across nodes with the hidden states handed from
    /// one range to the next.
    public func runLayers(_ hidden: inout [Float], layers: Range<Int>) throws {
        let c = model.config
        guard layers.lowerBound >= 0, layers.upperBound <= c.layers else {
            throw PlexusError(.outOfRange, "layers \(layers) are outside 0..<\(c.layers)")
        }
        guard !hidden.isEmpty, hidden.count % c.embedding == 0 else {
            throw PlexusError(.malformed, "hidden state has \(hidden.count) values, expected a multiple of \(c.embedding)")
        }
        let n = hidden.count / c.embedding
        guard length + n <= capacity else {
            throw PlexusError(.outOfRange, "the sequence would pass the context limit of \(capacity) tokens")
        }
        hidden.withUnsafeMutableBufferPointer { hp in
            var done = 0
            while done < n {
                let count = min(Self.batchLimit, n - done)
                let rows = hp.baseAddress! + done * c.embedding
                x.update(from: rows, count: count * c.embedding)
                prepareRotation(count: count, pos: length)
                for l in layers { layer(l, count: count, pos: length) }
                rows.update(from: x, count: count * c.embedding)
                length += count
                done += count
            }
        }
    }

    /// Final norm and output projection of a hidden state (the last one, if
    /// several are given) into `logits`.
    public func computeLogits(_ hidden: [Float]) {
        let c = model.config
        precondition(hidden.count >= c.embedding)
        hidden.withUnsafeBufferPointer { hp in
            normed.x.update(from: hp.baseAddress! + hidden.count - c.embedding, count: c.embedding)
        }
        Self.rmsNorm(normed.x, model.outputNorm, c.normEpsilon, count: c.embedding)
        normed.quantize(tokens: 1)
        let output = model.output, batch = normed
        logits.withUnsafeMutableBufferPointer { lp in
            let out = lp.baseAddress!
            pool.run { part, parts in
                output.compute(rows: WorkerPool.share(output.rows, part: part, parts: parts), batch, into: out, outStride: output.rows)
            }
        }
    }

    static func rmsNorm(_ v: UnsafeMutablePointer<Float>, _ w: [Float], _ eps: Float, count: Int) {
        var sum: Double = 0
        for i in 0..<count { sum += Double(v[i] * v[i]) }
        let mean = Float(sum / Double(count))
        let scale = 1 / (mean + eps).squareRoot()
        w.withUnsafeBufferPointer { wp in
            for i in 0..<count { v[i] = (v[i] * scale) * wp[i] }
        }
    }

    /// cos and sin of pos·base^(−2i/d) for each pair i and each position of
    /// the batch, with the angle advanced by repeated multiplication as the
    /// reference does.
    private func prepareRotation(count: Int, pos: Int) {
        let c = model.config
        let thetaScale = powf(c.ropeBase, -2 / Float(c.ropeDims))
        for t in 0..<count {
            var theta = Float(pos + t)
            var i = 0
            while i < c.ropeDims {
                rotation[t * c.ropeDims + i] = cosf(theta)
                rotation[t * c.ropeDims + i + 1] = sinf(theta)
                theta *= thetaScale
                i += 2
            }
        }
    }

    /// Rotates pairs (2i, 2i+1) of each head of token `t`'s vector `p`.
    private func rope(_ p: UnsafeMutablePointer<Float>, heads: Int, token t: Int) {
        let c = model.config
        let r = rotation + t * c.ropeDims
        for h in 0..<heads {
            var i = 0
            while i < c.ropeDims {
                let cs = r[i], sn = r[i + 1]
                let o = h * c.headDim + i
                let a = p[o], b = p[o + 1]
                p[o] = a * cs - b * sn
                p[o + 1] = a * sn + b * cs
                i += 2
            }
        }
    }

    private func layer(_ l: Int, count n: Int, pos: Int) {
        let c = model.config
        let L = model.layers[l]
        let dim = c.embedding, kvDim = c.kvDim, hd = c.headDim, ff = c.feedForward
        let q = self.q, k = self.k, v = self.v, x = self.x, up = self.up, proj = self.proj
        let normed = self.normed, attended = self.attended, hidden = self.hidden

        // Attention: norm, projections, rotation, cache.
        normed.x.update(from: x, count: n * dim)
        for t in 0..<n { Self.rmsNorm(normed.x + t * dim, L.attnNorm, c.normEpsilon, count: dim) }
        normed.quantize(tokens: n)
        pool.run { part, parts in
            L.wq.compute(rows: WorkerPool.share(dim, part: part, parts: parts), normed, into: q, outStride: dim)
            L.wk.compute(rows: WorkerPool.share(kvDim, part: part, parts: parts), normed, into: k, outStride: kvDim)
            L.wv.compute(rows: WorkerPool.share(kvDim, part: part, parts: parts), normed, into: v, outStride: kvDim)
        }
        let keys = self.keys + l * layerKV, values = self.values + l * layerKV, cap = capacity
        let halves = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt16.self)
        for t in 0..<n {
            rope(q + t * dim, heads: c.heads, token: t)
            rope(k + t * kvDim, heads: c.kvHeads, token: t)
            plx_to_half(k + t * kvDim, halves, Int32(kvDim), 1)
            for i in 0..<kvDim { keys[i * cap + pos + t] = halves[i] }
            plx_to_half(v + t * kvDim, values + (pos + t) * kvDim, Int32(kvDim), 1)
        }

        // Attention proper: one (token, head) pair per item.
        let heads = c.heads, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let stride = scratchStride
        let quantizeHeads = hd % Blocks.elements == 0
        pool.run { part, parts in
            let att = scratch + part * stride, qh = att + cap
            for item in WorkerPool.share(n * heads, part: part, parts: parts, align: 1) {
                let t = item / heads, h = item % heads, kvh = h / group
                plx_attention_head(q + t * dim + h * hd, keys + kvh * hd * cap, cap, values + kvh * hd, kvDim,
                                   Int32(pos + t + 1), Int32(hd), scale, att, qh, attended.x + t * dim + h * hd, 1)
                if quantizeHeads { attended.quantize(token: t, columns: h * hd..<(h + 1) * hd) }
            }
        }
        if quantizeHeads { attended.finish(tokens: n) } else { attended.quantize(tokens: n) }
        pool.run { part, parts in
            L.wo.compute(rows: WorkerPool.share(dim, part: part, parts: parts), attended, into: proj, outStride: dim)
        }
        for i in 0..<(n * dim) { x[i] += proj[i] }

        // Feed-forward (SwiGLU); each thread gates the rows it computed.
        normed.x.update(from: x, count: n * dim)
        for t in 0..<n { Self.rmsNorm(normed.x + t * dim, L.ffnNorm, c.normEpsilon, count: dim) }
        normed.quantize(tokens: n)
        pool.run { part, parts in
            let rows = WorkerPool.share(ff, part: part, parts: parts, align: Blocks.elements)
            guard !rows.isEmpty else { return }
            L.gate.compute(rows: rows, normed, into: hidden.x, outStride: ff)
            L.up.compute(rows: rows, normed, into: up, outStride: ff)
            for t in 0..<n {
                plx_silu_mul(hidden.x + t * ff + rows.lowerBound, up + t * ff + rows.lowerBound, Int32(rows.count), 1)
                hidden.quantize(token: t, columns: rows)
            }
        }
        hidden.finish(tokens: n)
        pool.run { part, parts in
            L.down.compute(rows: WorkerPool.share(dim, part: part, parts: parts), hidden, into: proj, outStride: dim)
        }
        for i in 0..<(n * dim) { x[i] += proj[i] }
    }
}
