/// Splits text into words before BPE, as the model's pre-tokenizer does.
///
/// SmolLM's (`tokenizer.ggml.pre = smollm`) first isolates every numeric
/// character, then applies GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// to each piece. The matcher below is written out by hand (no regex engine),
/// scanning code points, so it is linear in the input.
public enum PreTokenizer: String, Sendable {
    case gpt2
    case smollm

    /// The words of `text`, as ranges of its Unicode scalars.
    func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        switch self {
        case .gpt2:
            pieces = [0..<scalars.count]
        case .smollm:
            var start = 0
            for (i, s) in scalars.enumerated() where Self.isNumber(s) {
                if start < i { pieces.append(start..<i) }
                pieces.append(i..<i + 1)
                start = i + 1
            }
            if start < scalars.count { pieces.append(start..<scalars.count) }
        }
        var words: [Range<Int>] = []
        for piece in pieces { Self.gpt2Words(scalars, piece, into: &words) }
        return words
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    /// GPT-2's pattern over `range`, appending word ranges.
    static func gpt2Words(_ c: [Unicode.Scalar], _ range: Range<Int>, into words: inout [Range<Int>]) {
        let end = range.upperBound
        var pos = range.lowerBound
        var prev = pos
        func emit(_ e: Int) {
            if e > prev { words.append(prev..<e) }
            prev = e
        }
        func at(_ i: Int) -> Unicode.Scalar? { i < end ? c[i] : nil }
        enum Kind { case letter, number, other, space, none }
        func kind(_ i: Int) -> Kind {
            guard let s = at(i) else { return .none }
            if isWhitespace(s) { return .space }
            if isLetter(s) { return .letter }
            if isNumber(s) { return .number }
            return .other
        }
        while pos < end {
            let s = c[pos]
            if s == "'", let n = at(pos + 1) {
                if n == "s" || n == "t" || n == "m" || n == "d" {
                    pos += 2
                    emit(pos)
                    continue
                }
                if let n2 = at(pos + 2), (n == "r" && n2 == "e") || (n == "v" && n2 == "e") || (n == "l" && n2 == "l") {
                    pos += 3
                    emit(pos)
                    continue
                }
            }
            let k2 = s == " " ? kind(pos + 1) : kind(pos)
            if k2 == .letter || k2 == .number || k2 == .other {
                if s == " " { pos += 1 }
                while kind(pos) == k2 { pos += 1 }
                emit(pos)
                continue
            }
            var spaces = 0
            while kind(pos + spaces) == .space { spaces += 1 }
            if spaces > 1 && at(pos + spaces) != nil {
                // \s+(?!\S): leave the last space to prefix the next word.
                pos += spaces - 1
                emit(pos)
                continue
            }
            if spaces > 0 {
                pos += spaces
                emit(pos)
                continue
            }
            pos += 1
            emit(pos)
        }
    }
}
