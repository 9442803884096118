import Foundation
import PlexusCore

/// One shard of a pipeline: layers `layers` of a model for many sequences at once. The first
/// shard takes tokens, the others the hidden states the shard before sent; every shard but the
/// last sends its output states on; the last runs the final norm and the logits and samples
/// (a `SequenceRun` per sequence: the same sampling, stop strings, text and commitment as one
/// node running the whole model). Steps of different sequences that arrive together share one
/// pass (as in `BatchScheduler`), so a shard works on one sequence while the next shard works
/// on another. A chain of shards over consecutive ranges gives the bits of the whole model.
///
/// Each sequence also commits, by chunks of the commitment interval, to the states it received
/// and those it sent: the hashes a verifier compares to find the shard that went wrong.
public final class ShardEngine: @unchecked Sendable {
    // Invariant: `sequences`, `queue`, `running` and the counters only under `lock`; a sequence's
    // cache, run and commitments only in the pass being run (one at a time: `running`), or under
    // `lock` once it is closed.
    public let model: LlamaModel
    public let layers: Range<Int>
    /// Sequences open at once, at most.
    public let slots: Int
    private let pass: ForwardPass
    private let lock = NSLock()
    private var sequences: [Hash256: Sequence] = [:]
    private var queue: [Job] = []
    private var running = false
    private var counters = Stats()

    /// A drill (development chains only): alters the states this shard sends, and commits to
    /// what it sent, as a cheating shard would; a verifier must find it.
    public var drill: (@Sendable (inout [Float]) -> Void)?

    public var isFirst: Bool { layers.lowerBound == 0 }
    public var isLast: Bool { layers.upperBound == model.config.layers }

    public struct Stats: Sendable {
        public var steps = 0
        public var rows = 0
        public var peakSequences = 0
        public var opened = 0
    }

    public var stats: Stats { lock.withLock { counters } }
    public var openSequences: Int { lock.withLock { sequences.count } }

    /// What a step takes: tokens (the first shard) or `rows` hidden states of the model's width.
    public enum Input: Sendable {
        case tokens([TokenID])
        case hidden([Float], rows: Int)

        public var rows: Int {
            switch self {
            case let .tokens(t): t.count
            case let .hidden(_, r): r
            }
        }
    }

    /// What a step gives: the states for the next shard, or (the last shard) the pieces the
    /// sampled token made final and, once the sequence has ended, its generation.
    public enum Output: Sendable {
        case hidden([Float])
        case sampled(pieces: [GeneratedPiece], generation: Generation?)
    }

    /// What a closed sequence did, for its receipt.
    public struct Summary: Sendable {
        /// Positions run.
        public var rows: Int
        /// Roots over the states received (not for the first shard) and sent (not for the last).
        public var received: Commitment?
        public var sent: Commitment?
        /// The last shard's generation (with the commitment over final states), once it ended.
        public var generation: Generation?
        /// The last shard's tokens sampled and commitment over the final states so far (the
        /// generation's, once it ended).
        public var output: [TokenID] = []
        public var final: Commitment?
    }

    final class Sequence {
        let cache: KVCache
        var run: SequenceRun?
        var received: CommitmentBuilder
        var sent: CommitmentBuilder
        var rows = 0
        var generation: Generation?
        var busy = false
        init(cache: KVCache, run: SequenceRun?, interval: Int) {
            self.cache = cache
            self.run = run
            received = CommitmentBuilder(interval: interval)
            sent = CommitmentBuilder(interval: interval)
        }
    }

    final class Job: @unchecked Sendable {
        let sequence: Sequence
        let input: Input
        let sample: Bool
        /// Set before `done` is signalled; `done` signalled without a result hands over the next pass.
        var result: Result<Output, any Error>?
        let done = DispatchSemaphore(value: 0)
        init(_ sequence: Sequence, _ input: Input, sample: Bool) {
            self.sequence = sequence
            self.input = input
            self.sample = sample
        }
    }

    public init(model: LlamaModel, layers: Range<Int>, slots: Int = 8, stepTokens: Int = 64, threads: Int) throws {
        let L = model.config.layers
        guard layers.lowerBound >= 0, layers.upperBound <= L, !layers.isEmpty else {
            throw PlexusError(.outOfRange, "layers \(layers.lowerBound)-\(layers.upperBound) are not a range within 0-\(L)")
        }
        guard model.loaded.lowerBound <= layers.lowerBound, layers.upperBound <= model.loaded.upperBound else {
            throw PlexusError(.outOfRange, "layers \(layers.lowerBound)-\(layers.upperBound) are not all loaded")
        }
        self.model = model
        self.layers = layers
        self.slots = max(1, slots)
        pass = ForwardPass(model: model, rowLimit: max(1, stepTokens), maxContext: model.config.contextLength, threads: threads)
    }

    /// Opens sequence `id` for up to `capacity` positions; the last shard samples for
    /// `request` (whose prompt is every position it will be sent before sampling first).
    public func open(_ id: Hash256, capacity: Int, request: GenerationRequest?, commitmentInterval: Int = 32) throws {
        var run: SequenceRun?
        var cap = capacity
        if isLast {
            guard let request else { throw PlexusError(.malformed, "the last shard needs the request it samples for") }
            let r = try SequenceRun(request, model: model)
            cap = r.capacity
            run = r
        }
        let cache = try KVCache(config: model.config, capacity: cap)
        try lock.withLock {
            guard sequences[id] == nil else { throw PlexusError(.invalidState, "sequence \(id.hex.prefix(16)) is already open") }
            guard sequences.count < slots else { throw PlexusError(.busy, "all \(slots) sequences are in use") }
            sequences[id] = Sequence(cache: cache, run: run, interval: max(1, commitmentInterval))
            counters.opened += 1
        }
    }

    /// Runs `input` at sequence `id`'s next positions through this shard's layers, in a pass
    /// shared with whatever other sequences' steps are waiting. `sample`: the last shard samples
    /// after the last row (it must be the prompt's last position, or the token sampled before).
    /// Blocks until done.
    public func step(_ id: Hash256, _ input: Input, sample: Bool) throws -> Output {
        let seq: Sequence = try lock.withLock {
            guard let s = sequences[id] else { throw PlexusError(.notFound, "no open sequence \(id.hex.prefix(16))") }
            guard !s.busy else { throw PlexusError(.invalidState, "sequence \(id.hex.prefix(16)) has a step running") }
            s.busy = true
            return s
        }
        defer { lock.withLock { seq.busy = false } }
        try check(seq, input, sample: sample)
        // The caller that finds no pass running runs one itself, over every step waiting; when
        // it is done, the next waiting caller (if any) is woken to run the next pass.
        let job = Job(seq, input, sample: sample)
        let leads: Bool = lock.withLock {
            queue.append(job)
            if running { return false }
            running = true
            return true
        }
        if leads { lead() }
        while true {
            job.done.wait()
            if let result = job.result { return try result.get() }
            lead()  // woken to run the next pass
        }
    }

    /// Runs one pass over the steps waiting, then hands the next pass to a waiting caller.
    private func lead() {
        let jobs: [Job] = lock.withLock {
            defer { queue.removeAll() }
            return queue
        }
        run(jobs)
        lock.withLock {
            if let next = queue.first {
                next.done.signal()  // without a result: it leads
            } else {
                running = false
            }
        }
    }

    /// Closes sequence `id` and returns what it did (nil if it was not open).
    @discardableResult
    public func close(_ id: Hash256) -> Summary? {
        guard let s = lock.withLock({ sequences.removeValue(forKey: id) }) else { return nil }
        return Summary(rows: s.rows, received: isFirst ? nil : s.received.finish(), sent: isLast ? nil : s.sent.finish(),
                       generation: s.generation, output: s.run?.output ?? [], final: s.generation?.commitment ?? s.run?.commit.finish())
    }

    private func check(_ s: Sequence, _ input: Input, sample: Bool) throws {
        let dim = model.config.embedding
        switch input {
        case let .tokens(t):
            guard isFirst else { throw PlexusError(.malformed, "layer \(layers.lowerBound) takes hidden states, not tokens") }
            guard !t.isEmpty else { throw PlexusError(.malformed, "no tokens to run") }
        case let .hidden(h, rows):
            guard !isFirst else { throw PlexusError(.malformed, "the first layer takes tokens, not hidden states") }
            guard rows > 0, h.count == rows * dim else { throw PlexusError(.malformed, "expected \(rows) hidden states of width \(dim), got \(h.count) values") }
        }
        guard s.cache.length + input.rows <= s.cache.capacity else {
            throw PlexusError(.outOfRange, "the sequence would pass its limit of \(s.cache.capacity) positions")
        }
        guard isLast, let run = s.run else { return }
        guard s.generation == nil, !run.finished else { throw PlexusError(.invalidState, "the sequence has ended") }
        let prompt = run.request.prompt.count, after = s.cache.length + input.rows
        if s.cache.length < prompt {
            // Prompt positions, then the first sample at the prompt's end.
            guard after <= prompt else { throw PlexusError(.malformed, "\(after - prompt) rows past the prompt before its first token was sampled") }
            guard sample == (after == prompt) else { throw PlexusError(.malformed, "the last shard samples exactly at the prompt's end") }
        } else {
            guard input.rows == 1, sample else { throw PlexusError(.malformed, "after the prompt, each step runs the one token sampled before") }
        }
    }

    private func run(_ jobs: [Job]) {
        let segments: [ForwardPass.Segment] = jobs.map { j in
            switch j.input {
            case let .tokens(t): .init(cache: j.sequence.cache, tokens: t, wantsLogits: j.sample)
            case let .hidden(h, rows): .init(cache: j.sequence.cache, hidden: h, rows: rows, wantsLogits: j.sample)
            }
        }
        let outputs: [ForwardPass.SegmentOutput]
        do {
            outputs = try pass.step(segments, layers: layers)
        } catch {
            for j in jobs {
                j.result = .failure(error)
                j.done.signal()
            }
            return
        }
        lock.withLock {
            counters.steps += 1
            counters.rows += segments.reduce(0) { $0 + $1.count }
            counters.peakSequences = max(counters.peakSequences, segments.count)
        }
        let dim = model.config.embedding
        for (i, j) in jobs.enumerated() {
            let s = j.sequence, out = outputs[i]
            s.rows += j.input.rows
            if case let .hidden(h, _) = j.input { s.received.add(rows: h, width: dim) }
            if var h = out.hidden {
                drill?(&h)
                s.sent.add(rows: h, width: dim)
                j.result = .success(.hidden(h))
            } else {
                j.result = Result(catching: {
                    s.run!.record(out.normed, dim: dim)
                    var pieces: [GeneratedPiece] = []
                    guard let logits = out.logits else { return .sampled(pieces: [], generation: nil) }
                    if try s.run!.advance(logits, onPiece: { pieces.append($0) }) == nil {
                        s.generation = try s.run!.result(onPiece: { pieces.append($0) })
                    }
                    return .sampled(pieces: pieces, generation: s.generation)
                })
            }
            j.done.signal()
        }
    }
}
