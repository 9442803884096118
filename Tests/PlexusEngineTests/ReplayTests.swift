import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

/// Exact re-execution: an honest generation replays to the same tokens, finish and
/// commitment on any thread count and kernel path; any change to the output is caught
/// where it departs. (Serialized: the kernel path is process-wide.)
@Suite(.serialized) struct ReplayTests {
    static let model: LlamaModel = {
        let dir = NSTemporaryDirectory() + "plexus-replay-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "plexus-replay-\(getpid())") }
        return try! LlamaModel(path: TinyModel.write(to: dir + "/tiny.gguf"))  // a fixture this test writes itself
    }()

    static let prompt: [TokenID] = (try? model.tokenizer.encode("hello there", addBOS: false)) ?? [3]

    /// (sampling, stop strings, max tokens)
    static let cases: [(SamplingParameters, [String], Int)] = [
        (.init(), [], 40),
        (.init(temperature: 0.8, seed: 7), [], 40),
        (.init(temperature: 1.2, topK: 20, seed: 9), [], 33),
        (.init(temperature: 0.9, topP: 0.8, seed: 11), [], 50),
        (.init(temperature: 1.0, minP: 0.1, seed: 13), [], 40),
        (.init(temperature: 0.7, repetitionPenalty: 1.3, seed: 15), [], 40),
        (.init(temperature: 1.0, seed: 17), ["e"], 60),
        (.init(temperature: 1.5, seed: 19), [], 1),
    ]

    func generate(_ s: SamplingParameters, stop: [String], max: Int, threads: Int, level: Int32) throws -> Generation {
        KernelPath.level = level
        defer { KernelPath.level = 2 }
        return try Generator(model: Self.model, threads: threads).generate(GenerationRequest(prompt: Self.prompt, maxTokens: max, sampling: s, stop: stop))
    }

    func replay(_ output: [TokenID], _ s: SamplingParameters, stop: [String], max: Int, threads: Int = 2, level: Int32 = 2) throws -> ReplayReport {
        KernelPath.level = level
        defer { KernelPath.level = 2 }
        return try Generator(model: Self.model, threads: threads).replay(ReplayRequest(prompt: Self.prompt, output: output, maxTokens: max, sampling: s, stop: stop))
    }

    @Test(arguments: 0..<cases.count)
    func honestRunsReplayExactlyAcrossThreadsAndKernelPaths(_ i: Int) throws {
        let (s, stop, max) = Self.cases[i]
        for (gt, gl, vt, vl) in [(1, Int32(2), 2, Int32(0)), (2, 0, 1, 2), (2, 1, 1, 0)] {
            let g = try generate(s, stop: stop, max: max, threads: gt, level: gl)
            let r = try replay(g.tokens, s, stop: stop, max: max, threads: vt, level: vl)
            #expect(r.ok, "case \(i), generated on \(gt) threads at level \(gl), replayed on \(vt) at \(vl): \(String(describing: r.firstMismatch))")
            #expect(r.finish == g.finish && r.commitment == g.commitment, "case \(i): \(r.finish) vs \(g.finish)")
            #expect(g.commitment.positions == Self.prompt.count + g.tokens.count - (g.finish == .endOfSequence ? 0 : 1))
        }
    }

    @Test func anEndOfSequenceIsCheckedToo() throws {
        // A seed whose run ends by the model's own end of sequence (the fixture is fixed, so the seed is too).
        var found: (SamplingParameters, Generation)?
        for seed in UInt64(1)...400 {
            let s = SamplingParameters(temperature: 1.5, seed: seed)
            let g = try generate(s, stop: [], max: 120, threads: 2, level: 2)
            if g.finish == .endOfSequence, g.tokens.count >= 2 { found = (s, g); break }
        }
        let (s, g) = try #require(found)
        let r = try replay(g.tokens, s, stop: [], max: 120, level: 0)
        #expect(r.ok && r.finish == .endOfSequence && r.commitment == g.commitment)
        // Cut short, the output claims an end the engine did not reach.
        let cut = try replay(Array(g.tokens.dropLast()), s, stop: [], max: 120)
        #expect(cut.firstMismatch == .init(position: g.tokens.count - 1, expectedToken: g.tokens.last, gotToken: nil))
        // One more token: the engine had ended the sequence there.
        let longer = try replay(g.tokens + [5], s, stop: [], max: 120)
        #expect(longer.firstMismatch == .init(position: g.tokens.count, expectedToken: nil, gotToken: 5))
    }

    @Test func aChangedOutputFailsWhereItDeparts() throws {
        let (s, stop, max) = Self.cases[1]
        let g = try generate(s, stop: stop, max: max, threads: 2, level: 2)
        try #require(g.tokens.count == max)
        for k in [0, 3, g.tokens.count - 1] {
            var forged = g.tokens
            forged[k] = forged[k] == 100 ? 101 : 100
            let r = try replay(forged, s, stop: stop, max: max)
            #expect(r.firstMismatch == .init(position: k, expectedToken: g.tokens[k], gotToken: forged[k]))
            #expect(r.commitment != g.commitment || k == g.tokens.count - 1)
        }
        // Past the token limit, outside the vocabulary, cut short.
        #expect(try replay(g.tokens + [7], s, stop: stop, max: max).firstMismatch == .init(position: max, expectedToken: nil, gotToken: 7))
        var outside = g.tokens
        outside[5] = 99_999
        #expect(try replay(outside, s, stop: stop, max: max).firstMismatch?.position == 5)
        #expect(try replay(Array(g.tokens.dropLast(4)), s, stop: stop, max: max).firstMismatch?.gotToken == nil)
    }

    @Test func anotherSeedOrTemperatureIsCaught() throws {
        let (s, stop, max) = Self.cases[1]
        let g = try generate(s, stop: stop, max: max, threads: 2, level: 2)
        var seed = s
        seed.seed += 1
        #expect(try !replay(g.tokens, seed, stop: stop, max: max).ok)
        var hotter = s
        hotter.temperature = 1.6
        #expect(try !replay(g.tokens, hotter, stop: stop, max: max).ok)
        #expect(try !replay(g.tokens, .init(), stop: stop, max: max).ok)
    }
}
