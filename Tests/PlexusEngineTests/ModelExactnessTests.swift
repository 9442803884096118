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
}
