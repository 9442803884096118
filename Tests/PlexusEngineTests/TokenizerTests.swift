import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

/// Tokenizer exactness against llama.cpp on the real SmolLM2 vocabulary.
@Suite(.serialized) struct TokenizerTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var text: String
            var ids: [Int32]
        }
        var provenance: String
        var cases: [Case]
    }

    static func golden() throws -> Golden {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/tokenizer.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    static func tokenizer() throws -> Tokenizer {
        try Tokenizer(gguf: GGUFFile(path: TestModels.smolLM2()))
    }

    @Test func idsMatchLlamaCppAndRoundTrip() throws {
        let tok = try Self.tokenizer()
        let golden = try Self.golden()
        #expect(golden.cases.count >= 30)
        for c in golden.cases {
            let ids = try tok.encode(c.text, parseSpecial: true, addBOS: false)
            #expect(ids == c.ids, "\(c.text.debugDescription)")
            #expect(tok.decode(ids, renderSpecial: true) == c.text, "\(c.text.debugDescription)")
        }
    }

    @Test func streamingNeverSplitsACharacter() throws {
        let tok = try Self.tokenizer()
        for text in ["Emoji: 😀 🎉 👍🏽 👩‍💻 🇫🇷", "中文：你好，世界！", "naïve café", "plain"] {
            let ids = try tok.encode(text, addBOS: false)
            var d = StreamDecoder(tokenizer: tok)
            var pieces: [String] = []
            for id in ids { pieces.append(d.push(id)) }
            pieces.append(d.finish())
            #expect(pieces.joined() == text)
            #expect(!pieces.contains { $0.contains("\u{FFFD}") }, "\(pieces)")
        }
    }

    @Test func specialTokensAreTextWhenNotParsed() throws {
        let tok = try Self.tokenizer()
        let parsed = try tok.encode("<|im_start|>", parseSpecial: true, addBOS: false)
        #expect(parsed.count == 1 && tok.isControl(parsed[0]))
        let literal = try tok.encode("<|im_start|>", parseSpecial: false, addBOS: false)
        #expect(literal.count > 1)
        #expect(tok.decode(literal) == "<|im_start|>")
    }

    @Test func completePrefixLengthHoldsBackPartialCharacters() {
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        #expect(StreamDecoder.completePrefixLength(Array("ab".utf8)) == 2)
        #expect(StreamDecoder.completePrefixLength(Array("a".utf8) + euro.prefix(2)) == 1)
        #expect(StreamDecoder.completePrefixLength(Array("a".utf8) + euro) == 4)
        #expect(StreamDecoder.completePrefixLength([0xF0, 0x9F]) == 0)
    }
}
