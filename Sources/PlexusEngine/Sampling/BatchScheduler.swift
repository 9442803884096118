import Foundation
import PlexusCore

/// Continuous batching: every step runs one forward pass over all active sequences — the
/// next token of each one that is generating, then chunks of new prompts up to the step's
/// token budget (chunked prefill) — and sequences join and leave between steps. Each
/// sequence keeps its own KV cache and position; its tokens, text and commitment are bit for
/// bit those of `Generator.generate` running it alone (see `ForwardPass`).
///
/// A prefix cache keeps the KV entries and final states of recently finished sequences (LRU,
/// bounded in bytes); a new prompt that starts with the same tokens copies them instead of
/// running those positions again, with the same bits.
public final class BatchScheduler: @unchecked Sendable {
    // Invariant: `queue`, `running`, `entries`, `cachedBytes` and the counters only under `lock`;
    // `active`, the jobs' runs and caches, and `pass` only on the scheduler thread (one at a time).
    public let model: LlamaModel
    /// Sequences run together at most.
    public let slots: Int
    /// Tokens one step runs at most (decode tokens first, then prompt chunks).
    public let stepTokens: Int
    /// Bytes the prefix cache may hold.
    public let prefixCacheBytes: Int
    private let pass: ForwardPass
    private let lock = NSLock()
    private var queue: [Job] = []
    private var running = false
    private var active: [Job] = []
    private var entries: [PrefixEntry] = []
    private var cachedBytes = 0
    private var counters = Stats()

    /// What the scheduler has done, for `/metrics` and benchmarks.
    public struct Stats: Sendable {
        public var steps = 0
        public var rows = 0
        public var sequences = 0
        /// The most sequences one step ran together.
        public var peakSequences = 0
        public var cachedTokens = 0
        public var prefixEntries = 0
        public var prefixBytes = 0
    }

    public init(model: LlamaModel, slots: Int, stepTokens: Int = 32, threads: Int, prefixCacheBytes: Int = 0) {
        self.model = model
        self.slots = max(1, slots)
        self.stepTokens = max(self.slots, stepTokens)
        self.prefixCacheBytes = max(0, prefixCacheBytes)
        pass = ForwardPass(model: model, rowLimit: self.stepTokens, maxContext: model.config.contextLength, threads: threads)
    }

    public var stats: Stats { lock.withLock { counters } }

    /// A generation waiting for or holding a slot.
    final class Job: @unchecked Sendable {
        // Invariant: after submission, touched only by the scheduler thread.
        let request: GenerationRequest
        let onPiece: (GeneratedPiece) throws -> Void
        let completion: (Result<Generation, any Error>) -> Void
        var run: SequenceRun?
        var cache: KVCache?
        /// Prompt tokens run (or copied from the prefix cache) so far.
        var fed = 0
        /// The sampled token to run next, while generating.
        var next: TokenID?
        var cachedTokens = 0
        /// The final states of every position, kept for the prefix cache.
        var states: [Float] = []

        init(_ request: GenerationRequest, onPiece: @escaping (GeneratedPiece) throws -> Void,
             completion: @escaping (Result<Generation, any Error>) -> Void) {
            self.request = request
            self.onPiece = onPiece
            self.completion = completion
        }
    }

    struct PrefixEntry {
        var tokens: [TokenID]
        var cache: KVCache
        var states: [Float]
        var bytes: Int
    }

    /// Generates in the shared batch, calling `onPiece` (on the scheduler's thread) for each
    /// piece; `onPiece` throws to stop (the client went away). Blocks until the sequence ends.
    @discardableResult
    public func generate(_ request: GenerationRequest, onPiece: (GeneratedPiece) throws -> Void = { _ in }) throws -> Generation {
        // The job reaches `onPiece` through a box emptied before returning, so that nothing
        // the scheduler still holds refers to the caller's closure.
        final class Box: @unchecked Sendable {
            var onPiece: ((GeneratedPiece) throws -> Void)?
            var outcome: Result<Generation, any Error>?
            let done = DispatchSemaphore(value: 0)
        }
        let box = Box()
        return try withoutActuallyEscaping(onPiece) { onPiece in
            box.onPiece = onPiece
            submit(Job(request, onPiece: { try box.onPiece?($0) }) { result in
                box.outcome = result
                box.done.signal()
            })
            box.done.wait()
            box.onPiece = nil
            return try box.outcome!.get()
        }
    }

    /// How many of `request`'s prompt tokens the prefix cache would supply now.
    public func cachedPrefix(of prompt: [TokenID]) -> Int {
        lock.withLock { bestEntry(for: prompt)?.1 ?? 0 }
    }

    private func submit(_ job: Job) {
        lock.withLock {
            queue.append(job)
            if !running {
                running = true
                let t = Thread { [self] in loop() }
                t.name = "plexus-batch"
                t.stackSize = 1 << 22
                t.start()
            }
        }
    }

    private func loop() {
        while true {
            // Sequences join between steps; the thread ends when none is left.
            let admitted: [Job]? = lock.withLock {
                if active.isEmpty && queue.isEmpty {
                    running = false
                    return nil
                }
                let n = min(queue.count, slots - active.count)
                defer { queue.removeFirst(n) }
                return Array(queue.prefix(n))
            }
            guard let admitted else { return }
            for job in admitted { start(job) }
            step()
        }
    }

    /// Gives `job` its run and cache, and what the prefix cache holds of its prompt.
    private func start(_ job: Job) {
        do {
            let run = try SequenceRun(job.request, model: model)
            let cache = try KVCache(config: model.config, capacity: run.capacity)
            job.run = run
            job.cache = cache
            let hit = lock.withLock { () -> (PrefixEntry, Int)? in
                guard let (index, count) = bestEntry(for: job.request.prompt) else { return nil }
                let e = entries.remove(at: index)
                entries.append(e)  // most recently used last
                counters.cachedTokens += count
                return (e, count)
            }
            if let (entry, count) = hit {
                cache.copyPrefix(of: entry.cache, count: count)
                let dim = model.config.embedding
                let states = Array(entry.states[0..<(count * dim)])
                job.run!.record(states, dim: dim)
                if prefixCacheBytes > 0 { job.states = states }
                job.fed = count
                job.cachedTokens = count
            }
            active.append(job)
        } catch {
            job.completion(.failure(error))
        }
    }

    /// The entry sharing the longest prefix with `prompt`, and how many positions of it can be
    /// used (at least one prompt token is always run, for the logits).
    private func bestEntry(for prompt: [TokenID]) -> (Int, Int)? {
        var best: (Int, Int)?
        for (i, e) in entries.enumerated() {
            var n = 0
            let limit = min(e.tokens.count, prompt.count - 1)
            while n < limit && e.tokens[n] == prompt[n] { n += 1 }
            if n > 0 && n > (best?.1 ?? 0) { best = (i, n) }
        }
        return best
    }

    private func step() {
        var segments: [ForwardPass.Segment] = [], jobs: [Job] = []
        var budget = stepTokens
        for job in active {
            guard let next = job.next else { continue }
            segments.append(.init(cache: job.cache!, tokens: [next], wantsLogits: true))
            jobs.append(job)
            budget -= 1
        }
        for job in active where job.next == nil && budget > 0 {
            let prompt = job.request.prompt
            let n = min(prompt.count - job.fed, budget)
            guard n > 0 else { continue }
            segments.append(.init(cache: job.cache!, tokens: Array(prompt[job.fed..<(job.fed + n)]), wantsLogits: job.fed + n == prompt.count))
            jobs.append(job)
            budget -= n
        }
        guard !segments.isEmpty else { return }
        let outputs: [ForwardPass.SegmentOutput]
        do {
            outputs = try pass.step(segments)
        } catch {
            for job in jobs { finish(job, .failure(error)) }
            return
        }
        lock.withLock {
            counters.steps += 1
            counters.rows += segments.reduce(0) { $0 + $1.count }
            counters.peakSequences = max(counters.peakSequences, segments.count)
        }
        let dim = model.config.embedding
        for (i, job) in jobs.enumerated() {
            let out = outputs[i]
            job.run!.record(out.normed, dim: dim)
            if prefixCacheBytes > 0 { job.states += out.normed }
            if job.next == nil { job.fed += segments[i].tokens.count }
            guard let logits = out.logits else { continue }
            do {
                job.next = try job.run!.advance(logits, onPiece: job.onPiece)
                if job.next == nil { finish(job, .success(try job.run!.result(onPiece: job.onPiece))) }
            } catch {
                finish(job, .failure(error))
            }
        }
    }

    /// Frees `job`'s slot, keeps its positions in the prefix cache, and reports its outcome.
    private func finish(_ job: Job, _ result: Result<Generation, any Error>) {
        active.removeAll { $0 === job }
        var result = result
        if case .success(var g) = result {
            g.cachedTokens = job.cachedTokens
            result = .success(g)
            if let cache = job.cache, let run = job.run { remember(tokens: Array(run.sequence.prefix(cache.length)), cache: cache, states: job.states) }
        }
        lock.withLock { counters.sequences += 1 }
        job.cache = nil
        job.completion(result)
    }

    /// Keeps a finished sequence's positions (in a cache of their own size), evicting the least
    /// recently used entries beyond the byte limit.
    private func remember(tokens: [TokenID], cache: KVCache, states: [Float]) {
        guard prefixCacheBytes > 0, tokens.count >= 2, states.count == tokens.count * model.config.embedding else { return }
        let c = model.config
        let bytes = 4 * c.layers * c.kvDim * tokens.count + states.count * MemoryLayout<Float>.size + tokens.count * MemoryLayout<TokenID>.size
        guard bytes <= prefixCacheBytes else { return }
        // Room is made before the copy, so that the cache never holds more than its limit.
        let keep: Bool = lock.withLock {
            if entries.contains(where: { $0.tokens.starts(with: tokens) }) { return false }
            // An entry that is a prefix of the new one adds nothing.
            entries.removeAll { e in
                let covered = e.tokens.count <= tokens.count && tokens.starts(with: e.tokens)
                if covered { cachedBytes -= e.bytes }
                return covered
            }
            while cachedBytes + bytes > prefixCacheBytes, !entries.isEmpty { cachedBytes -= entries.removeFirst().bytes }
            cachedBytes += bytes  // reserved for the entry being made
            return true
        }
        guard keep else { return }
        guard let copy = try? KVCache(config: c, capacity: tokens.count) else {
            lock.withLock { cachedBytes -= bytes }
            return
        }
        copy.copyPrefix(of: cache, count: tokens.count)
        lock.withLock {
            entries.append(PrefixEntry(tokens: tokens, cache: copy, states: states, bytes: bytes))
            counters.prefixEntries = entries.count
            counters.prefixBytes = cachedBytes
        }
    }
}
