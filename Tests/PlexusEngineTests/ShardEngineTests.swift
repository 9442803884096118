import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Synchronization
import Testing

/// A model split by layers across shard engines gives, for any split points, the bits one
/// engine gives with the whole model: tokens, text, pieces and commitment.
@Suite struct ShardEngineTests {
    typealias Outcome = BatchSchedulerTests.Outcome

    /// Drives one sequence through `shards` as a gateway does: the prompt in micro-batches of
    /// `chunk` positions, then one token at a time. Returns its outcome and the shards' summaries.
    static func pipeline(_ shards: [ShardEngine], _ r: GenerationRequest, id: Hash256, chunk: Int = 7) throws -> (Outcome, [ShardEngine.Summary]) {
        let capacity = min(shards[0].model.config.contextLength, r.prompt.count + r.maxTokens + 1)
        for s in shards { try s.open(id, capacity: capacity, request: s.isLast ? r : nil) }
        var pieces: [GeneratedPiece] = []
        var generation: Generation?
        func through(_ tokens: [TokenID], sample: Bool) throws {
            var out = try shards[0].step(id, .tokens(tokens), sample: false)
            for s in shards.dropFirst() {
                guard case let .hidden(h) = out else { throw PlexusError(.malformed, "a middle shard sampled") }
                out = try s.step(id, .hidden(h, rows: tokens.count), sample: s.isLast && sample)
            }
            guard case let .sampled(p, g) = out else { throw PlexusError(.malformed, "the last shard sent states") }
            pieces += p
            generation = g
        }
        var fed = 0
        while fed < r.prompt.count {
            let n = min(chunk, r.prompt.count - fed)
            try through(Array(r.prompt[fed..<(fed + n)]), sample: fed + n == r.prompt.count)
            fed += n
        }
        while generation == nil, let last = pieces.last?.token {
            try through([last], sample: true)
        }
        let summaries = shards.map { $0.close(id)! }
        let g = try #require(generation ?? summaries.last?.generation)
        return (Outcome(g, pieces: pieces.map(\.text)), summaries)
    }

    static func splits(_ layers: Int, _ points: [Int]) -> [Range<Int>] {
        let cuts = [0] + points + [layers]
        return (0..<(cuts.count - 1)).map { cuts[$0]..<cuts[$0 + 1] }
    }

    @Test func anySplitGivesTheWholeModelsBits() throws {
        let dir = try TemporaryDirectory("plexus-shard")
        defer { dir.remove() }
        var shape = TinyModel.Shape()
        shape.layers = 4
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf", shape: shape))
        var rng = SeededGenerator(seed: 16)
        let requests = (0..<6).map { _ in BatchSchedulerTests.randomRequest(m, &rng) }
        let alone = try requests.map { try BatchSchedulerTests.alone(m, $0) }
        for points in [[2], [1], [3], [1, 3], [1, 2, 3]] {
            // Each shard loads only its own layers.
            let shards = try Self.splits(4, points).map { try ShardEngine(model: LlamaModel(path: m.path, layers: $0), layers: $0, threads: 1) }
            for (i, r) in requests.enumerated() {
                let (out, summaries) = try Self.pipeline(shards, r, id: Hash256.of(Array("\(points)-\(i)".utf8)), chunk: 1 + i * 5)
                #expect(out == alone[i], "split \(points), request \(i)")
                // What each shard sent is what the next received, chunk for chunk.
                for k in 0..<(summaries.count - 1) {
                    #expect(summaries[k].sent == summaries[k + 1].received)
                    #expect(summaries[k].rows == summaries[k + 1].rows)
                }
                #expect(summaries.first?.received == nil && summaries.last?.sent == nil)
            }
            #expect(shards.allSatisfy { $0.openSequences == 0 })
        }
    }

    @Test func concurrentSequencesShareShardPassesWithTheirOwnBits() throws {
        let dir = try TemporaryDirectory("plexus-shard")
        defer { dir.remove() }
        var shape = TinyModel.Shape()
        shape.layers = 3
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf", shape: shape))
        var rng = SeededGenerator(seed: 17)
        let requests = (0..<8).map { _ in BatchSchedulerTests.randomRequest(m, &rng) }
        let alone = try requests.map { try BatchSchedulerTests.alone(m, $0) }
        let shards = try Self.splits(3, [1, 2]).map { try ShardEngine(model: m, layers: $0, slots: 8, threads: 1) }
        let results = Mutex<[Int: Result<Outcome, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: requests.count) { i in
            let r = Result { try Self.pipeline(shards, requests[i], id: Hash256.of([UInt8(i)]), chunk: 5).0 }
            results.withLock { $0[i] = r }
        }
        for i in requests.indices { #expect(try results.withLock { $0[i]! }.get() == alone[i], "request \(i)") }
        // (Whether two steps met in one pass depends on timing; `plexus bench shards` measures it.)
        print("shard passes: peak sequences per pass \(shards.map { $0.stats.peakSequences })")
    }

    @Test func badStepsAreRefusedAndChangeNothing() throws {
        let dir = try TemporaryDirectory("plexus-shard")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let head = try ShardEngine(model: m, layers: 0..<1, slots: 2, threads: 1)
        let tail = try ShardEngine(model: m, layers: 1..<2, slots: 2, threads: 1)
        #expect(throws: PlexusError.self) { try ShardEngine(model: m, layers: 1..<3, threads: 1) }
        #expect(throws: PlexusError.self) { try ShardEngine(model: m, layers: 1..<1, threads: 1) }
        #expect(throws: PlexusError.self) { try ShardEngine(model: LlamaModel(path: m.path, layers: 0..<1), layers: 0..<2, threads: 1) }  // not loaded
        let r = GenerationRequest(prompt: [10, 11, 12], maxTokens: 4, sampling: SamplingParameters())
        let id = Hash256.of([1])
        #expect(throws: PlexusError.self) { try tail.open(id, capacity: 8, request: nil) }  // the last shard samples: it needs the request
        try head.open(id, capacity: 8, request: nil)
        try tail.open(id, capacity: 8, request: r)
        #expect(throws: PlexusError.self) { try head.open(id, capacity: 8, request: nil) }  // already open
        let dim = m.config.embedding
        #expect(throws: PlexusError.self) { try head.step(Hash256.of([2]), .tokens([1]), sample: false) }  // unknown sequence
        #expect(throws: PlexusError.self) { try head.step(id, .hidden([Float](repeating: 0, count: dim), rows: 1), sample: false) }
        #expect(throws: PlexusError.self) { try head.step(id, .tokens([]), sample: false) }
        #expect(throws: PlexusError.self) { try head.step(id, .tokens([TokenID(m.config.vocabSize)]), sample: false) }
        #expect(throws: PlexusError.self) { try head.step(id, .tokens(Array(repeating: 5, count: 9)), sample: false) }  // past capacity
        #expect(throws: PlexusError.self) { try tail.step(id, .tokens([1]), sample: true) }
        #expect(throws: PlexusError.self) { try tail.step(id, .hidden([1, 2, 3], rows: 1), sample: true) }  // wrong width
        #expect(throws: PlexusError.self) { try tail.step(id, .hidden([Float](repeating: 0, count: 4 * dim), rows: 4), sample: true) }  // past the prompt
        #expect(throws: PlexusError.self) { try tail.step(id, .hidden([Float](repeating: 0, count: 2 * dim), rows: 2), sample: true) }  // samples early
        // None of that moved anything: the pipeline still gives the whole model's bits.
        head.close(id); tail.close(id)
        let (out, _) = try Self.pipeline([head, tail], r, id: id)
        #expect(out == (try BatchSchedulerTests.alone(m, r)))
        // Slots are a limit.
        try head.open(Hash256.of([3]), capacity: 4, request: nil)
        try head.open(Hash256.of([4]), capacity: 4, request: nil)
        #expect(throws: PlexusError.self) { try head.open(Hash256.of([5]), capacity: 4, request: nil) }
    }

    /// The default model, split at two points, greedy and seeded: the whole model's bits.
    @Test func theDefaultModelSplitGivesItsBits() throws {
        let m = try LlamaModel(path: TestModels.smolLM2())
        let L = m.config.layers
        let prompt = try m.tokenizer.encode("The capital of France is", parseSpecial: false)
        let requests = [GenerationRequest(prompt: prompt, maxTokens: 12, sampling: SamplingParameters()),
                        GenerationRequest(prompt: prompt, maxTokens: 12, sampling: SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, seed: 7))]
        for points in [[L / 2], [7, 20]] {
            let shards = try Self.splits(L, points).map { try ShardEngine(model: m, layers: $0, threads: 2) }
            for (i, r) in requests.enumerated() {
                let (out, _) = try Self.pipeline(shards, r, id: Hash256.of([UInt8(i)]), chunk: 4)
                #expect(out == (try BatchSchedulerTests.alone(m, r)), "split \(points), request \(i)")
            }
        }
    }
}
