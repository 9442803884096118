import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

/// Determinism, continuation and layer ranges on the real model.
@Suite(.serialized) struct EngineTests {
    static func model() throws -> LlamaModel { try LlamaModel(path: TestModels.smolLM2()) }

    static func prompt(_ m: LlamaModel, _ text: String) throws -> [TokenID] {
        let source = try #require(m.file.metadata["tokenizer.chat_template"]?.string)
        return try ChatTemplate(source: source).tokens([ChatMessage(role: "user", content: text)], tokenizer: m.tokenizer)
    }

    @Test func outputIsIdenticalAcrossRunsAndThreadCounts() throws {
        let m = try Self.model()
        let p = try Self.prompt(m, "Name three colours.")
        for sampling in [SamplingParameters(), SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, seed: 7)] {
            let req = GenerationRequest(prompt: p, maxTokens: 12, sampling: sampling)
            let one = try Generator(model: m, threads: 1).generate(req)
            let two = try Generator(model: m, threads: 2).generate(req)
            let again = try Generator(model: m, threads: 2).generate(req)
            #expect(one.tokens == two.tokens)
            #expect(two.tokens == again.tokens)
            #expect(!one.tokens.isEmpty)
        }
    }

    @Test func aStoppedSequenceContinuesExactlyOnAFreshEngine() throws {
        let m = try Self.model()
        let p = try Self.prompt(m, "Tell me about the moon.")
        for sampling in [SamplingParameters(), SamplingParameters(temperature: 1.0, seed: 42)] {
            let full = try Generator(model: m).generate(GenerationRequest(prompt: p, maxTokens: 10, sampling: sampling))
            guard full.tokens.count == 10 else { continue }
            let head = Array(full.tokens.prefix(4))
            let rest = try Generator(model: m).generate(GenerationRequest(prompt: p + head, maxTokens: 6, sampling: sampling))
            #expect(head + rest.tokens == full.tokens)
        }
    }

    @Test func layerRangesHandOverTheHiddenState() throws {
        let m = try Self.model()
        let tokens = try m.tokenizer.encode("The capital of France is", addBOS: false)
        let whole = try InferenceState(model: m, capacity: 16)
        let first = try InferenceState(model: m, capacity: 16)
        let second = try InferenceState(model: m, capacity: 16)
        let k = m.config.layers / 2
        for t in tokens {
            try whole.forward(t)
            var h = try first.embed(t)
            try first.runLayers(&h, layers: 0..<k)
            try second.runLayers(&h, layers: k..<m.config.layers)
            second.computeLogits(h)
        }
        #expect(whole.logits == second.logits)
    }

    @Test func promptsBeyondTheContextAreRefused() throws {
        let m = try Self.model()
        let long = [TokenID](repeating: 100, count: m.config.contextLength + 1)
        #expect(throws: PlexusError.self) { try Generator(model: m).generate(GenerationRequest(prompt: long, maxTokens: 1)) }
        #expect(throws: PlexusError.self) { try Generator(model: m).generate(GenerationRequest(prompt: [-1], maxTokens: 1)) }
        #expect(throws: PlexusError.self) { try Generator(model: m).generate(GenerationRequest(prompt: [1], maxTokens: 1, sampling: .init(temperature: -1))) }
    }

    /// 16 requests of mixed lengths and sampling, arriving at different moments, share the
    /// batch of 8 slots; each gives exactly what it gives alone, and greedy ones llama.cpp's
    /// reference continuations as closely as the engine alone does.
    @Test func sixteenConcurrentRequestsGiveTheirBitsAlone() throws {
        let m = try Self.model()
        let topics = ["the sea", "a red fox", "why the sky is blue", "prime numbers", "bread", "the moon landing", "a haiku about rain",
                      "Paris", "how to tie a knot", "volcanoes", "a short poem", "chess openings", "the number seven", "owls", "tea", "rivers"]
        var requests: [GenerationRequest] = []
        for (i, t) in topics.enumerated() {
            let words = String(repeating: "Please be clear. ", count: i % 5)
            let sampling = i % 2 == 0 ? SamplingParameters() : SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, seed: UInt64(i))
            requests.append(GenerationRequest(prompt: try Self.prompt(m, words + "Tell me about \(t)."), maxTokens: 8 + (i * 5) % 24,
                                              sampling: sampling, stop: i % 7 == 3 ? ["."] : []))
        }
        let scheduler = BatchScheduler(model: m, slots: 8, stepTokens: 32, threads: 2, prefixCacheBytes: 64 << 20)
        let batched = try BatchSchedulerTests.together(scheduler, requests, delaysMs: requests.indices.map { ($0 * 37) % 400 })
        for (i, r) in requests.enumerated() {
            #expect(batched[i] == (try BatchSchedulerTests.alone(m, r)), "request \(i)")
        }
        #expect(scheduler.stats.peakSequences >= 4)
    }

    @Test func stopStringsEndTheOutputBeforeThem() throws {
        let m = try Self.model()
        let p = try m.tokenizer.encode("1, 2, 3, 4, 5,", addBOS: false)
        var streamed = ""
        let g = try Generator(model: m).generate(GenerationRequest(prompt: p, maxTokens: 20, stop: [" 8"])) { streamed += $0.text }
        #expect(g.finish == .stop)
        #expect(g.text == " 6, 7,")
        #expect(streamed == g.text)
    }
}

@Suite struct SamplerTests {
    let logits: [Float] = [1.0, 3.0, 2.0, 3.0, -1.0]

    /// The fast ranking is the comparison sort's order, element for element: ties, both
    /// zeros, infinities, huge and tiny values, vocabularies large and small.
    @Test func fastRankingEqualsTheReferenceOrder() {
        var rng = SeededGenerator(seed: 77)
        let specials: [Float] = [0, -0.0, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                 .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 1, -1]
        for round in 0..<60 {
            let n = [1, 2, 5, 257, 4_096, 49_152][round % 6]
            let levels = Int(rng.next() % 50) + 1  // few distinct values: many ties
            let l: [Float] = (0..<n).map { _ in
                rng.next() % 10 == 0 ? specials[Int(rng.next() % UInt64(specials.count))]
                    : Float(Int(rng.next() % UInt64(levels)) - levels / 2) * (round % 2 == 0 ? 0.125 : 1.7)
            }
            #expect(Sampler.rank(l) == Sampler.referenceRank(l), "round \(round), \(n) logits")
        }
    }

    @Test func greedyPicksTheLowestIdAmongTies() throws {
        let s = try Sampler(SamplingParameters())
        #expect(s.sample(logits, history: [], index: 0) == 1)
    }

    @Test func drawsDependOnlyOnSeedAndPosition() throws {
        let s = try Sampler(SamplingParameters(temperature: 1, seed: 9))
        let a = (0..<50).map { s.sample(logits, history: [], index: UInt64($0)) }
        let b = (0..<50).map { s.sample(logits, history: [], index: UInt64($0)) }
        #expect(a == b)
        #expect(Set(a).count > 1)
        #expect(s.sample(logits, history: [], index: 17) == a[17])
    }

    @Test func filtersKeepOnlyTheirCandidates() throws {
        let topK = try Sampler(SamplingParameters(temperature: 1, topK: 2, seed: 1))
        let minP = try Sampler(SamplingParameters(temperature: 1, minP: 0.5, seed: 1))
        for i in 0..<200 {
            #expect([1, 3].contains(topK.sample(logits, history: [], index: UInt64(i))))
            #expect([1, 3].contains(minP.sample(logits, history: [], index: UInt64(i))))
        }
    }

    @Test func frequenciesFollowTheSoftmax() throws {
        let s = try Sampler(SamplingParameters(temperature: 1, seed: 123))
        let l: [Float] = [0, Float(log(3.0))]   // probabilities 1/4 and 3/4
        let n = 20_000
        let ones = (0..<n).filter { s.sample(l, history: [], index: UInt64($0)) == 1 }.count
        #expect(abs(Double(ones) / Double(n) - 0.75) < 0.015)
    }

    @Test func repetitionPenaltyDemotesSeenTokens() throws {
        let s = try Sampler(SamplingParameters(repetitionPenalty: 2))
        #expect(s.sample(logits, history: [1], index: 0) == 3)
        #expect(s.sample(logits, history: [1, 3], index: 0) == 2)
    }

    @Test(arguments: [
        SamplingParameters(temperature: -1), SamplingParameters(temperature: .nan), SamplingParameters(topP: 0),
        SamplingParameters(topP: 1.5), SamplingParameters(minP: 2), SamplingParameters(repetitionPenalty: 0),
        SamplingParameters(topK: -1),
    ])
    func outOfRangeParametersAreRejected(p: SamplingParameters) {
        #expect(throws: PlexusError.self) { try Sampler(p) }
    }
}
