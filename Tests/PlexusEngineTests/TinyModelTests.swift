import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

/// Fast engine tests on tiny random-weight models written by PlexusTestKit.
@Suite struct TinyModelTests {
    func withModel(_ shape: TinyModel.Shape = .init(), _ body: (LlamaModel) throws -> Void) throws {
        let dir = try TemporaryDirectory("plexus-tiny")
        defer { dir.remove() }
        try body(try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf", shape: shape)))
    }

    @Test(arguments: [GGMLType.q4_1, .q4_0, .q8_0, .f32, .f16])
    func everyWeightTypeRunsDeterministically(type: GGMLType) throws {
        var shape = TinyModel.Shape()
        shape.weightType = type
        try withModel(shape) { m in
            let prompt = try m.tokenizer.encode("hello there", addBOS: false)
            let req = GenerationRequest(prompt: prompt, maxTokens: 8, sampling: .init(temperature: 0.9, seed: 3))
            let a = try Generator(model: m, threads: 1).generate(req)
            let b = try Generator(model: m, threads: 2).generate(req)
            #expect(a.tokens == b.tokens)
            #expect(a.tokens.count + (a.finish == .endOfSequence ? 1 : 0) >= 1)
        }
    }

    @Test func layerRangesMatchTheWholeModel() throws {
        try withModel { m in
            let whole = try InferenceState(model: m, capacity: 8)
            let first = try InferenceState(model: m, capacity: 8)
            let second = try InferenceState(model: m, capacity: 8)
            for t in try m.tokenizer.encode("the hello", addBOS: false) {
                try whole.forward(t)
                var h = try first.embed(t)
                try first.runLayers(&h, layers: 0..<1)
                try second.runLayers(&h, layers: 1..<2)
                second.computeLogits(h)
            }
            #expect(whole.logits == second.logits)
            let finite = whole.logits.allSatisfy { $0.isFinite }
            #expect(finite)
        }
    }

    @Test func unsupportedArchitecturesAndTypesAreClearErrors() throws {
        var shape = TinyModel.Shape()
        shape.architecture = "mamba"
        #expect { try withModel(shape) { _ in } } throws: { ($0 as? PlexusError)?.code == .unsupported }
        shape = TinyModel.Shape()
        shape.weightType = .q5_0
        #expect { try withModel(shape) { _ in } } throws: { ($0 as? PlexusError)?.code == .unsupported }
    }

    @Test func theContextLimitIsEnforced() throws {
        try withModel { m in
            let state = try InferenceState(model: m, capacity: 2)
            try state.forward(5)
            try state.forward(6)
            #expect(throws: PlexusError.self) { try state.forward(7) }
            #expect(throws: PlexusError.self) { try InferenceState(model: m, capacity: 10_000) }
        }
    }
}

@Suite struct StreamingTests {
    @Test func theStreamYieldsWhatGenerateReturns() async throws {
        let dir = try TemporaryDirectory("plexus-tiny")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let req = GenerationRequest(prompt: try m.tokenizer.encode("hello", addBOS: false), maxTokens: 10,
                                    sampling: .init(temperature: 1, seed: 5))
        let expected = try Generator(model: m).generate(req)
        var tokens: [TokenID] = []
        var text = ""
        for try await piece in Generator(model: m).stream(req) {
            tokens.append(piece.token)
            text += piece.text
        }
        #expect(tokens.count >= expected.tokens.count)
        #expect(Array(Set(tokens)).sorted() == Array(Set(expected.tokens)).sorted())
        #expect(text == expected.text)
    }
}
