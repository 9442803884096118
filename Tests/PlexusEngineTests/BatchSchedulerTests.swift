import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Synchronization
import Testing

/// Continuous batching keeps the bits: a sequence run beside any mix of others, joining at any
/// moment, at any step budget and thread count, gives exactly what it gives alone.
@Suite struct BatchSchedulerTests {
    struct Outcome: Equatable {
        var tokens: [TokenID]
        var text: String
        var finish: FinishReason
        var root: Hash256
        var pieces: [String]
        init(_ g: Generation, pieces: [String]) {
            tokens = g.tokens
            text = g.text
            finish = g.finish
            root = g.commitment.root
            self.pieces = pieces
        }
    }

    static func alone(_ m: LlamaModel, _ r: GenerationRequest) throws -> Outcome {
        var pieces: [String] = []
        let g = try Generator(model: m, threads: 1).generate(r) { pieces.append($0.text) }
        return Outcome(g, pieces: pieces)
    }

    /// Runs `requests` on `scheduler`, each from its own thread after its delay; returns the outcomes in order.
    static func together(_ scheduler: BatchScheduler, _ requests: [GenerationRequest], delaysMs: [Int]) throws -> [Outcome] {
        let results = Mutex<[Int: Result<Outcome, any Error>]>([:])
        let group = DispatchGroup()
        for (i, r) in requests.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                usleep(UInt32(delaysMs[i] * 1_000))
                var pieces: [String] = []
                let outcome = Result { Outcome(try scheduler.generate(r) { pieces.append($0.text) }, pieces: pieces) }
                results.withLock { $0[i] = outcome }
            }
        }
        group.wait()
        return try requests.indices.map { i in try results.withLock { $0[i]! }.get() }
    }

    static func randomRequest(_ m: LlamaModel, _ rng: inout SeededGenerator) -> GenerationRequest {
        let length = Int.random(in: 1...70, using: &rng)
        let prompt = (0..<length).map { _ in TokenID(Int.random(in: 3..<m.config.vocabSize, using: &rng)) }
        let sampling: SamplingParameters = Bool.random(using: &rng)
            ? SamplingParameters()
            : SamplingParameters(temperature: 0.9, topK: 20, topP: 0.95, repetitionPenalty: 1.1, seed: UInt64.random(in: 0...1_000, using: &rng))
        let stop = Int.random(in: 0..<4, using: &rng) == 0 ? ["e"] : []
        return GenerationRequest(prompt: prompt, maxTokens: Int.random(in: 0...40, using: &rng), sampling: sampling, stop: stop)
    }

    @Test func randomSchedulesGiveWhatEachSequenceGivesAlone() throws {
        let dir = try TemporaryDirectory("plexus-batch")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        var rng = SeededGenerator(seed: 15)
        var peaks: [Int] = []
        for round in 0..<8 {
            let slots = Int.random(in: 1...8, using: &rng)
            let budget = Int.random(in: slots...48, using: &rng)
            let threads = Int.random(in: 1...2, using: &rng)
            let prefix = Bool.random(using: &rng) ? 4 << 20 : 0
            let scheduler = BatchScheduler(model: m, slots: slots, stepTokens: budget, threads: threads, prefixCacheBytes: prefix)
            var requests = (0..<12).map { _ in Self.randomRequest(m, &rng) }
            // Some share a prefix with an earlier one, for the prefix cache.
            for i in 6..<12 where Bool.random(using: &rng) {
                requests[i].prompt = Array(requests[i - 6].prompt.prefix(Int.random(in: 1...requests[i - 6].prompt.count, using: &rng))) + requests[i].prompt
                if requests[i].prompt.count >= m.config.contextLength - 41 { requests[i].prompt = Array(requests[i].prompt.prefix(100)) }
            }
            let delays = (0..<12).map { _ in Int.random(in: 0...30, using: &rng) }
            let batched = try Self.together(scheduler, requests, delaysMs: delays)
            for (i, r) in requests.enumerated() {
                #expect(batched[i] == (try Self.alone(m, r)), "round \(round) (slots \(slots), budget \(budget), threads \(threads)) request \(i)")
            }
            #expect(scheduler.stats.sequences == requests.count)
            peaks.append(scheduler.stats.peakSequences)
        }
        // The schedules did batch: some steps ran several sequences at once.
        #expect(peaks.max()! >= 4, "peak sequences per step: \(peaks)")
    }

    @Test func aCachedPrefixGivesTheSameBitsAndIsCounted() throws {
        let dir = try TemporaryDirectory("plexus-batch")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let scheduler = BatchScheduler(model: m, slots: 2, stepTokens: 16, threads: 2, prefixCacheBytes: 8 << 20)
        let system = try m.tokenizer.encode("You are a helpful assistant. Answer briefly.", addBOS: false)
        let first = GenerationRequest(prompt: system + (try m.tokenizer.encode(" hello", addBOS: false)), maxTokens: 8)
        let second = GenerationRequest(prompt: system + (try m.tokenizer.encode(" there", addBOS: false)), maxTokens: 8,
                                       sampling: .init(temperature: 1, seed: 9))
        let a = try scheduler.generate(first)
        #expect(a.cachedTokens == 0)
        #expect(scheduler.cachedPrefix(of: second.prompt) == system.count)
        let b = try scheduler.generate(second)
        #expect(b.cachedTokens == system.count)
        #expect(Outcome(b, pieces: []) == Outcome(try Generator(model: m, threads: 1).generate(second), pieces: []))
        // The same prompt again reuses all but its last token.
        let c = try scheduler.generate(first)
        #expect(c.cachedTokens == first.prompt.count - 1)
        #expect(c.tokens == a.tokens && c.commitment == a.commitment)
        let stats = scheduler.stats
        #expect(stats.prefixBytes <= 8 << 20 && stats.prefixEntries >= 1)
    }

    @Test func theCacheStaysWithinItsLimit() throws {
        let dir = try TemporaryDirectory("plexus-batch")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let limit = 200_000
        let scheduler = BatchScheduler(model: m, slots: 1, stepTokens: 32, threads: 1, prefixCacheBytes: limit)
        var rng = SeededGenerator(seed: 2)
        for _ in 0..<20 {
            var r = Self.randomRequest(m, &rng)
            r.maxTokens = 10
            _ = try scheduler.generate(r)
            #expect(scheduler.stats.prefixBytes <= limit)
        }
        #expect(scheduler.stats.prefixEntries >= 1)
    }

    @Test func aCancelledSequenceFreesItsSlotAndLeavesTheOthersExact() throws {
        let dir = try TemporaryDirectory("plexus-batch")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let scheduler = BatchScheduler(model: m, slots: 2, stepTokens: 8, threads: 2)
        let prompt = try m.tokenizer.encode("hello there", addBOS: false)
        let keep = GenerationRequest(prompt: prompt, maxTokens: 30, sampling: .init(temperature: 0.7, seed: 4))
        let group = DispatchGroup()
        let cancelled = Mutex(false)
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            var n = 0
            do {
                try scheduler.generate(GenerationRequest(prompt: prompt, maxTokens: 30)) { _ in
                    n += 1
                    if n == 3 { throw CancellationError() }
                }
            } catch is CancellationError {
                cancelled.withLock { $0 = true }
            } catch {}
        }
        let kept = try scheduler.generate(keep)
        group.wait()
        #expect(cancelled.withLock { $0 })
        #expect(Outcome(kept, pieces: []) == Outcome(try Generator(model: m, threads: 1).generate(keep), pieces: []))
        // Both slots are free again: two more run at once.
        let again = try Self.together(scheduler, [keep, keep], delaysMs: [0, 0])
        #expect(again[0].tokens == kept.tokens && again[1].tokens == kept.tokens)
    }

    @Test func badRequestsFailAloneWithAClearError() throws {
        let dir = try TemporaryDirectory("plexus-batch")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let scheduler = BatchScheduler(model: m, slots: 4, threads: 1)
        #expect(throws: PlexusError.self) { try scheduler.generate(GenerationRequest(prompt: [], maxTokens: 4)) }
        #expect(throws: PlexusError.self) { try scheduler.generate(GenerationRequest(prompt: [TokenID(m.config.vocabSize)], maxTokens: 4)) }
        let tooLong = [TokenID](repeating: 5, count: m.config.contextLength)
        #expect(throws: PlexusError.self) { try scheduler.generate(GenerationRequest(prompt: tooLong, maxTokens: 4)) }
        #expect(try scheduler.generate(GenerationRequest(prompt: [5, 6], maxTokens: 3)).tokens.count <= 3)
    }
}
