import CPlexusKernels
import Foundation
import PlexusCore

/// The KV cache of one sequence, allocated once.
///
/// Keys of layer l, KV head h, dimension d, position t lie at
/// `keys[l * layerKV + (h * headDim + d) * capacity + t]` (transposed, so that the
/// attention kernel reads one key dimension for every position in a run); values at
/// `values[l * layerKV + t * kvDim + h * headDim + d]`. Both are f16, as the reference
/// engine stores them.
public final class KVCache: @unchecked Sendable {
    // Invariant: used by one forward pass at a time (the scheduler's thread or the owning state).
    /// Tokens the cache can hold.
    public let capacity: Int
    /// Positions filled so far.
    public internal(set) var length = 0
    let keys: UnsafeMutablePointer<UInt16>
    let values: UnsafeMutablePointer<UInt16>
    let layerKV: Int
    let layers: Int
    let kvDim: Int

    /// A cache for up to `capacity` positions of a model with `config` (at most its context).
    public init(config c: LlamaConfig, capacity: Int) throws {
        guard capacity >= 1, capacity <= c.contextLength else {
            throw PlexusError(.outOfRange, "context \(capacity) is outside 1...\(c.contextLength)")
        }
        self.capacity = capacity
        layers = c.layers
        kvDim = c.kvDim
        layerKV = capacity * c.kvDim
        // calloc: pages of the values are touched only as positions fill.
        keys = calloc(c.layers * layerKV, 2)!.assumingMemoryBound(to: UInt16.self)
        values = calloc(c.layers * layerKV, 2)!.assumingMemoryBound(to: UInt16.self)
    }

    deinit { free(keys); free(values) }

    /// Bytes held by the keys and values.
    public var bytes: Int { 4 * layers * layerKV }

    /// Forgets everything after the first `count` positions.
    public func truncate(to count: Int) { length = max(0, min(length, count)) }

    /// Copies the first `count` positions of `other` (a cache of the same model) over this
    /// one's and sets its length to `count`: the same bits as running those positions here.
    public func copyPrefix(of other: KVCache, count: Int) {
        precondition(other.layers == layers && other.kvDim == kvDim && count <= other.length && count <= capacity)
        for l in 0..<layers {
            let src = other.keys + l * other.layerKV, dst = keys + l * layerKV
            for i in 0..<kvDim { (dst + i * capacity).update(from: src + i * other.capacity, count: count) }
            (values + l * layerKV).update(from: other.values + l * other.layerKV, count: count * kvDim)
        }
        length = count
    }
}

/// Buffers for forward passes over up to `rowLimit` rows (token positions) at once, of one
/// sequence or many, each row with its own KV cache and position.
///
/// Every output value is computed whole by one thread in a fixed order (the matrix kernels
/// accumulate each row alone; norms, rotation and attention are per row), so a row's bits
/// depend neither on the other rows of the pass nor on how many there are, nor on the
/// thread count: this is what makes batching exact.
public final class ForwardPass {
    public let model: LlamaModel
    /// Rows one pass of the layers takes.
    public let rowLimit: Int
    /// The longest cache this pass attends over.
    public let maxContext: Int
    let threads: Int
    let pool: WorkerPool

    private let x: UnsafeMutablePointer<Float>  // residual stream, rows × dim
    private let normed: ActivationBatch  // rows × dim
    private let attended: ActivationBatch  // rows × dim
    private let hidden: ActivationBatch  // rows × ff
    private let q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
    private let up: UnsafeMutablePointer<Float>  // rows × ff
    private let proj: UnsafeMutablePointer<Float>  // rows × dim
    private let rotation: UnsafeMutablePointer<Float>  // rows × ropeDims (cos, sin per pair)
    private let scratch: UnsafeMutablePointer<Float>  // per thread: maxContext + headDim + kvDim
    private let scratchStride: Int
    /// The cache and position of each row of the pass being run.
    private var rowCaches: [KVCache] = []
    private var rowPositions: [Int] = []

    public init(model: LlamaModel, rowLimit: Int, maxContext: Int, threads: Int) {
        let c = model.config
        self.model = model
        self.rowLimit = max(1, rowLimit)
        self.maxContext = max(1, min(maxContext, c.contextLength))
        self.threads = max(1, min(64, threads))
        pool = WorkerPool.shared(threads: self.threads)
        let b = self.rowLimit
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
        scratchStride = self.maxContext + c.headDim + c.kvDim
        scratch = .allocate(capacity: self.threads * scratchStride)
    }

    deinit {
        x.deallocate(); normed.deallocate(); attended.deallocate(); hidden.deallocate()
        q.deallocate(); k.deallocate(); v.deallocate(); up.deallocate(); proj.deallocate()
        rotation.deallocate(); scratch.deallocate()
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

    /// Runs the rows of `hidden` through `layers`: row i belongs to `caches[i]` at position
    /// `positions[i]`, and rows of one cache come in order of position. Writes each row's keys
    /// and values into its cache (lengths are the caller's to advance) and the rows' new states
    /// back into `hidden`, in passes of `rowLimit` rows.
    func runLayers(_ hidden: UnsafeMutablePointer<Float>, caches: [KVCache], positions: [Int], layers: Range<Int>) {
        let c = model.config
        precondition(caches.count == positions.count)
        var done = 0
        while done < caches.count {
            let count = min(rowLimit, caches.count - done)
            let rows = hidden + done * c.embedding
            rowCaches = Array(caches[done..<(done + count)])
            rowPositions = Array(positions[done..<(done + count)])
            x.update(from: rows, count: count * c.embedding)
            prepareRotation(count: count)
            for l in layers { layer(l, count: count) }
            rows.update(from: x, count: count * c.embedding)
            done += count
        }
        rowCaches = []
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

    /// The logits of the given rows of `normed` (final-normed states), one after another:
    /// up to `rowLimit` rows share each pass over the output matrix, and each value equals
    /// what a pass over its row alone gives.
    public func logits(ofNormed normed: [Float], rows: [Int]) -> [Float] {
        let c = model.config, vocab = model.output.rows
        var out = [Float](repeating: 0, count: rows.count * vocab)
        let output = model.output, batch = self.normed, pool = self.pool
        normed.withUnsafeBufferPointer { np in
            out.withUnsafeMutableBufferPointer { lp in
                var done = 0
                while done < rows.count {
                    let n = min(rowLimit, rows.count - done)
                    for i in 0..<n {
                        precondition(rows[done + i] >= 0 && (rows[done + i] + 1) * c.embedding <= normed.count)
                        (batch.x + i * c.embedding).update(from: np.baseAddress! + rows[done + i] * c.embedding, count: c.embedding)
                    }
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

    /// Part of one pass over many sequences: the rows to run at the next positions of `cache` —
    /// tokens when the pass starts at layer 0, else the hidden states an earlier shard sent
    /// (`count` rows of the model's width) — and whether the logits after the last are wanted.
    public struct Segment {
        public var cache: KVCache
        public var tokens: [TokenID]
        public var hidden: [Float]?
        public var wantsLogits: Bool
        /// Rows (positions) the segment runs.
        public let count: Int
        public init(cache: KVCache, tokens: [TokenID], wantsLogits: Bool) {
            self.cache = cache
            self.tokens = tokens
            hidden = nil
            self.wantsLogits = wantsLogits
            count = tokens.count
        }
        public init(cache: KVCache, hidden: [Float], rows: Int, wantsLogits: Bool) {
            self.cache = cache
            tokens = []
            self.hidden = hidden
            self.wantsLogits = wantsLogits
            count = rows
        }
    }

    /// What a step gives each segment. A pass through the last layer gives the final-normed
    /// state of every row it ran (what a commitment hashes) and the logits after its last row
    /// if it asked for them; a pass that ends earlier gives the rows' hidden states for the
    /// next shard (`normed` empty).
    public struct SegmentOutput {
        public var normed: [Float]
        public var logits: [Float]?
        public var hidden: [Float]? = nil
    }

    /// Runs every segment through `layers` (all of them unless given) in shared passes (each
    /// weight row read once per pass for all of them), advances each cache, and returns each
    /// segment's output. The bits of each segment's output are those of running it alone, and
    /// a chain of passes over consecutive ranges gives the bits of one pass over their union.
    public func step(_ segments: [Segment], layers range: Range<Int>? = nil) throws -> [SegmentOutput] {
        let c = model.config, dim = c.embedding
        let layers = range ?? 0..<c.layers
        guard layers.lowerBound >= 0, layers.upperBound <= c.layers, !layers.isEmpty else {
            throw PlexusError(.outOfRange, "layers \(layers.lowerBound)-\(layers.upperBound) are not within 0-\(c.layers)")
        }
        guard model.loaded.lowerBound <= layers.lowerBound, layers.upperBound <= model.loaded.upperBound else {
            throw PlexusError(.outOfRange, "layers \(layers.lowerBound)-\(layers.upperBound) are not all loaded (\(model.loaded.lowerBound)-\(model.loaded.upperBound) are)")
        }
        let first = layers.lowerBound == 0, last = layers.upperBound == c.layers
        var caches: [KVCache] = [], positions: [Int] = [], tokens: [TokenID] = []
        var seen = Set<ObjectIdentifier>()
        for s in segments {
            guard s.count > 0 else { throw PlexusError(.malformed, "no tokens to run") }
            if first {
                guard s.hidden == nil else { throw PlexusError(.malformed, "the first layer takes tokens, not hidden states") }
            } else {
                guard let h = s.hidden, h.count == s.count * dim else {
                    throw PlexusError(.malformed, "layer \(layers.lowerBound) takes \(s.count) hidden states of width \(dim)")
                }
            }
            guard seen.insert(ObjectIdentifier(s.cache)).inserted else { throw PlexusError(.malformed, "a cache appears twice in one step") }
            guard s.cache.length + s.count <= s.cache.capacity else {
                throw PlexusError(.outOfRange, "the sequence would pass the context limit of \(s.cache.capacity) tokens")
            }
            guard s.cache.capacity <= maxContext else { throw PlexusError(.outOfRange, "a cache of \(s.cache.capacity) is longer than the pass attends over") }
            for i in 0..<s.count {
                caches.append(s.cache)
                positions.append(s.cache.length + i)
            }
            tokens += s.tokens
        }
        guard !caches.isEmpty else { return [] }
        var h: [Float]
        if first {
            h = try embed(tokens)
        } else {
            h = []
            h.reserveCapacity(caches.count * dim)
            for s in segments { h += s.hidden! }
        }
        h.withUnsafeMutableBufferPointer { runLayers($0.baseAddress!, caches: caches, positions: positions, layers: layers) }
        for s in segments { s.cache.length += s.count }
        guard last else {
            var out: [SegmentOutput] = [], start = 0
            for s in segments {
                out.append(SegmentOutput(normed: [], logits: nil, hidden: Array(h[(start * dim)..<((start + s.count) * dim)])))
                start += s.count
            }
            return out
        }
        let normed = finalNormed(h)
        var wanted: [Int] = [], start = 0
        for s in segments {
            if s.wantsLogits { wanted.append(start + s.count - 1) }
            start += s.count
        }
        let logits = wanted.isEmpty ? [] : self.logits(ofNormed: normed, rows: wanted)
        let vocab = model.output.rows
        var out: [SegmentOutput] = []
        start = 0
        var w = 0
        for s in segments {
            let rows = Array(normed[(start * dim)..<((start + s.count) * dim)])
            var l: [Float]?
            if s.wantsLogits {
                l = Array(logits[(w * vocab)..<((w + 1) * vocab)])
                w += 1
            }
            out.append(SegmentOutput(normed: rows, logits: l))
            start += s.count
        }
        return out
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

    /// cos and sin of pos·base^(−2i/d) for each pair i and each row's position, with the
    /// angle advanced by repeated multiplication as the reference does.
    private func prepareRotation(count: Int) {
        let c = model.config
        let thetaScale = powf(c.ropeBase, -2 / Float(c.ropeDims))
        for t in 0..<count {
            var theta = Float(rowPositions[t])
            var i = 0
            while i < c.ropeDims {
                rotation[t * c.ropeDims + i] = cosf(theta)
                rotation[t * c.ropeDims + i + 1] = sinf(theta)
                theta *= thetaScale
                i += 2
            }
        }
    }

    /// Rotates pairs (2i, 2i+1) of each head of row `t`'s vector `p`.
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

    private func layer(_ l: Int, count n: Int) {
        let c = model.config
        let L = model.layers[l]!
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
        let halves = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt16.self)
        let caches = rowCaches, positions = rowPositions
        for t in 0..<n {
            let cache = caches[t], pos = positions[t], cap = cache.capacity
            let keys = cache.keys + l * cache.layerKV, values = cache.values + l * cache.layerKV
            rope(q + t * dim, heads: c.heads, token: t)
            rope(k + t * kvDim, heads: c.kvHeads, token: t)
            plx_to_half(k + t * kvDim, halves, Int32(kvDim), 1)
            for i in 0..<kvDim { keys[i * cap + pos] = halves[i] }
            plx_to_half(v + t * kvDim, values + pos * kvDim, Int32(kvDim), 1)
        }

        // Attention proper: one (row, head) pair per item, each over its row's cache.
        let heads = c.heads, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let stride = scratchStride, context = maxContext
        let quantizeHeads = hd % Blocks.elements == 0
        let scratch = self.scratch
        pool.run { part, parts in
            let att = scratch + part * stride, qh = att + context
            for item in WorkerPool.share(n * heads, part: part, parts: parts, align: 1) {
                let t = item / heads, h = item % heads, kvh = h / group
                let cache = caches[t], cap = cache.capacity
                let keys = cache.keys + l * cache.layerKV, values = cache.values + l * cache.layerKV
                plx_attention_head(q + t * dim + h * hd, keys + kvh * hd * cap, cap, values + kvh * hd, kvDim,
                                   Int32(positions[t] + 1), Int32(hd), scale, att, qh, attended.x + t * dim + h * hd, 1)
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
