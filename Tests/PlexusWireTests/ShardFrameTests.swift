import Foundation
import PlexusCore
import PlexusTestKit
import PlexusWire
import Testing

/// Shard step frames round-trip bit for bit; any other bytes are refused with an error, never a crash.
@Suite struct ShardFrameTests {
    static let sequence = Hash256.of(Array("sequence".utf8))

    static func samples() -> ([ShardFrame.Step], [ShardFrame.Reply]) {
        let odd: [Float] = [0, -0.0, 1.5, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 3, 4]
        let steps = [ShardFrame.Step(sequence: sequence, sample: false, input: .tokens([1, 2, 49_151])),
                     ShardFrame.Step(sequence: sequence, sample: true, input: .hidden(odd, width: 5))]
        let piece = ShardFrame.Piece(token: 17, text: "héllo ✓", tokenText: "hé", logprob: -0.25,
                                     top: [.init(token: 17, text: "hé", logprob: -0.25), .init(token: 3, text: "", logprob: -3)])
        let replies = [ShardFrame.Reply.states(odd, width: 2),
                       .sampled([piece, .init(token: nil, text: "tail")], done: .init(finish: "length", promptTokens: 12)),
                       .sampled([], done: nil), .error(code: "not_found", message: "no open sequence ✗")]
        return (steps, replies)
    }

    /// Bitwise equality (NaN included).
    static func same(_ a: [Float], _ b: [Float]) -> Bool { a.map(\.bitPattern) == b.map(\.bitPattern) }

    @Test func framesRoundTripExactly() throws {
        let (steps, replies) = Self.samples()
        for s in steps {
            let back = try ShardFrame.decodeStep(ShardFrame.encode(s))
            #expect(back.sequence == s.sequence && back.sample == s.sample)
            switch (back.input, s.input) {
            case let (.tokens(a), .tokens(b)): #expect(a == b)
            case let (.hidden(a, wa), .hidden(b, wb)): #expect(Self.same(a, b) && wa == wb)
            default: Issue.record("input kind changed")
            }
        }
        for r in replies {
            let back = try ShardFrame.decodeReply(ShardFrame.encode(r))
            if case let .states(a, wa) = back, case let .states(b, wb) = r {
                #expect(Self.same(a, b) && wa == wb)
            } else {
                #expect(back == r)
            }
        }
    }

    @Test func truncatedCorruptedAndRandomFramesAreRefused() throws {
        let (steps, replies) = Self.samples()
        let frames = steps.map(ShardFrame.encode) + replies.map(ShardFrame.encode)
        var rng = SeededGenerator(seed: 18)
        var refused = 0
        for f in frames {
            // Every truncation fails.
            for n in 0..<f.count {
                #expect(throws: PlexusError.self) { _ = try ShardFrame.decodeStep(Array(f.prefix(n))) }
                #expect(throws: PlexusError.self) { _ = try ShardFrame.decodeReply(Array(f.prefix(n))) }
            }
            // A byte more is left over.
            #expect(throws: PlexusError.self) { _ = try ShardFrame.decodeStep(f + [0]) }
            #expect(throws: PlexusError.self) { _ = try ShardFrame.decodeReply(f + [0]) }
            // Random corruption: an error or a frame, never a crash.
            for _ in 0..<2_000 {
                var g = f
                for _ in 0..<Int.random(in: 1...4, using: &rng) { g[Int.random(in: 0..<g.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                if (try? ShardFrame.decodeStep(g)) == nil && (try? ShardFrame.decodeReply(g)) == nil { refused += 1 }
            }
        }
        #expect(refused > 0)
        for _ in 0..<5_000 {
            var g = ShardFrame.magic + [UInt8.random(in: 1...3, using: &rng)]
            g += (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? ShardFrame.decodeStep(g)
            _ = try? ShardFrame.decodeReply(g)
        }
        // Claimed sizes beyond the bounds are refused before anything is allocated.
        var huge = ShardFrame.encode(steps[1])
        huge.replaceSubrange(39..<43, with: [0xff, 0xff, 0xff, 0x7f])  // rows
        #expect(throws: PlexusError.self) { _ = try ShardFrame.decodeStep(huge) }
        var wide = ShardFrame.encode(steps[1])
        wide.replaceSubrange(43..<47, with: [0xff, 0xff, 0xff, 0xff])  // width
        #expect(throws: PlexusError.self) { _ = try ShardFrame.decodeStep(wide) }
    }
}
