import PlexusCore

extension Tokenizer {
    /// The raw bytes a token stands for. Special tokens give their text when
    /// `renderSpecial` is set and nothing otherwise.
    public func bytes(of id: TokenID, renderSpecial: Bool = false) -> [UInt8] {
        guard id >= 0, Int(id) < tokens.count else { return [] }
        let t = types[Int(id)]
        if t == 3 || t == 2 || t == 5 { return renderSpecial ? Array(tokens[Int(id)].utf8) : [] }
        if t == 4 { return Array(tokens[Int(id)].utf8) }
        return ByteLevel.decode(tokens[Int(id)]) ?? Array(tokens[Int(id)].utf8)
    }

    /// Decodes a sequence of tokens to text (invalid UTF-8 becomes U+FFFD).
    public func decode(_ ids: [TokenID], renderSpecial: Bool = false) -> String {
        var out: [UInt8] = []
        for id in ids { out.append(contentsOf: bytes(of: id, renderSpecial: renderSpecial)) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Turns a stream of tokens into text pieces without ever splitting a UTF-8
/// character: bytes of an incomplete character wait for the next token.
public struct StreamDecoder: Sendable {
    let tokenizer: Tokenizer
    let renderSpecial: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, renderSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.renderSpecial = renderSpecial
    }

    /// The text that `id` completes (possibly empty).
    public mutating func push(_ id: TokenID) -> String {
        pending.append(contentsOf: tokenizer.bytes(of: id, renderSpecial: renderSpecial))
        let cut = Self.completePrefixLength(pending)
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is left at the end of the stream (an incomplete character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a UTF-8 character.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        var i = b.count
        // Look back at most 3 bytes for the lead byte of a trailing character.
        var back = 0
        while i > 0 && back < 4 {
            let c = b[i - 1]
            if c & 0xC0 == 0x80 { i -= 1; back += 1; continue }
            let need: Int
            if c & 0x80 == 0 { need = 1 } else if c & 0xE0 == 0xC0 { need = 2 } else if c & 0xF0 == 0xE0 { need = 3 } else if c & 0xF8 == 0xF0 { need = 4 } else { need = 1 }
            return (b.count - (i - 1)) >= need ? b.count : i - 1
        }
        return b.count
    }
}
