import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

/// The engine against llama.cpp's greedy continuations of chat prompts on the same GGUF
/// (`Golden/greedy.json`, made by `scripts/golden_model.py`).
@Suite(.serialized) struct ModelExactnessTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var prompt: String
            var prompt_ids: [Int32]
            var ids: [Int32]
            var margins: [Double]
        }
        var provenance: String
        var cases: [Case]
    }

    @Test func greedyContinuationsMatchLlamaCpp() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/greedy.json")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        #expect(golden.cases.count >= 10)
        let model = try LlamaModel(path: TestModels.smolLM2())
        let source = try #require(model.file.metadata["tokenizer.chat_template"]?.string)
        let template = try ChatTemplate(source: source)
        var agree = 0, positions = 0, prefixMatches = 0
        for c in golden.cases {
            // Our chat rendering and tokenizer produce llama.cpp's prompt.
            let prompt = try template.tokens([ChatMessage(role: "user", content: c.prompt)], tokenizer: model.tokenizer)
            #expect(prompt == c.prompt_ids, "prompt tokens for \(c.prompt)")
            let state = try InferenceState(model: model, capacity: c.prompt_ids.count + c.ids.count + 1)
            var logits: [Float] = []
            for t in c.prompt_ids { logits = try state.forward(t) }
            var firstMismatch: Int?
            // Teacher forcing: follow llama.cpp's tokens, compare our top-1 at each step.
            for (k, expected) in c.ids.enumerated() {
                var best = 0
                for i in 1..<logits.count where logits[i] > logits[best] { best = i }
                positions += 1
                if TokenID(best) == expected { agree += 1 } else {
                    if firstMismatch == nil { firstMismatch = k }
                    print("mismatch \(c.prompt.prefix(20)) @\(k): ours \(best) llama \(expected) our gap \(logits[best] - logits[Int(expected)]) llama margin \(c.margins[k])")
                }
                if k + 1 < c.ids.count { logits = try state.forward(expected) }
            }
            if (firstMismatch ?? Int.max) >= min(16, c.ids.count) { prefixMatches += 1 }
        }
        let agreement = Double(agree) / Double(positions)
        let prefixShare = Double(prefixMatches) / Double(golden.cases.count)
        #expect(agreement >= 0.98, "top-1 agreement \(agreement) over \(positions) positions")
        #expect(prefixShare >= 0.9, "first 16 tokens match for \(prefixMatches) of \(golden.cases.count) prompts")
        print("model exactness: top-1 agreement \(agree)/\(positions), 16-token prefix match \(prefixMatches)/\(golden.cases.count)")
    }

    /// The golden prompts' greedy continuations run all at once through the batch scheduler
    /// are llama.cpp's as often as the engine's alone are (and equal to its alone, bit for bit).
    @Test func batchedGreedyContinuationsMatchLlamaCpp() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/greedy.json")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        let model = try LlamaModel(path: TestModels.smolLM2())
        let cases = Array(golden.cases.prefix(16))
        let requests = cases.map { GenerationRequest(prompt: $0.prompt_ids, maxTokens: min(16, $0.ids.count)) }
        let scheduler = BatchScheduler(model: model, slots: 8, stepTokens: 32, threads: 2)
        let batched = try BatchSchedulerTests.together(scheduler, requests, delaysMs: requests.indices.map { ($0 * 53) % 300 })
        var matches = 0
        for (i, c) in cases.enumerated() {
            #expect(batched[i] == (try BatchSchedulerTests.alone(model, requests[i])), "case \(i)")
            if batched[i].tokens == Array(c.ids.prefix(batched[i].tokens.count)) && !batched[i].tokens.isEmpty { matches += 1 }
        }
        #expect(Double(matches) / Double(cases.count) >= 0.9, "\(matches) of \(cases.count) batched continuations are llama.cpp's")
        print("batched exactness: \(matches)/\(cases.count) greedy continuations equal llama.cpp's over their first 16 tokens")
    }

    /// The golden prompts through a pipeline of three shards (each loading only its layers):
    /// the same continuations as one engine, and llama.cpp's where one engine gives llama.cpp's.
    @Test func shardedGreedyContinuationsMatchLlamaCpp() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/greedy.json")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        let path = try TestModels.smolLM2()
        let model = try LlamaModel(path: path)
        let shards = try ShardEngineTests.splits(model.config.layers, [9, 21]).map {
            try ShardEngine(model: LlamaModel(path: path, layers: $0), layers: $0, threads: 2)
        }
        var matches = 0
        let cases = Array(golden.cases.prefix(8))
        for (i, c) in cases.enumerated() {
            let r = GenerationRequest(prompt: c.prompt_ids, maxTokens: min(16, c.ids.count))
            let (out, _) = try ShardEngineTests.pipeline(shards, r, id: Hash256.of([UInt8(i), 9]), chunk: 11)
            #expect(out == (try BatchSchedulerTests.alone(model, r)), "case \(i)")
            if out.tokens == Array(c.ids.prefix(out.tokens.count)) && !out.tokens.isEmpty { matches += 1 }
        }
        #expect(Double(matches) / Double(cases.count) >= 0.85, "\(matches) of \(cases.count) sharded continuations are llama.cpp's")
        print("sharded exactness: \(matches)/\(cases.count) greedy continuations through 3 shards equal llama.cpp's over their first 16 tokens")
    }
}
