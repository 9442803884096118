import PlexusCore

/// A token id.
public typealias TokenID = Int32

/// Byte-level BPE tokenizer built from a GGUF vocabulary and merge list
/// (`tokenizer.ggml.model = gpt2`), with the model's pre-tokenizer and its
/// special tokens.
public struct Tokenizer: Sendable {
    /// Token texts in byte-level form, by id.
    public let tokens: [String]
    /// GGUF token types by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public let types: [Int32]
    let ids: [String: TokenID]
    let ranks: [String: Int]
    let pre: PreTokenizer
    /// Special tokens (control, user-defined, unknown), longest text first.
    let specials: [(text: [UInt8], id: TokenID, type: Int32)]
    /// Beginning- and end-of-sequence ids, if the model has them.
    public let bos: TokenID?
    public let eos: TokenID?
    /// Whether the model wants BOS prepended.
    public let addBOS: Bool

    /// Largest input accepted by `encode`, in bytes.
    public static let maxInputBytes = 4 << 20

    /// Builds the tokenizer described by a GGUF file's metadata.
    public init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        guard let model = m["tokenizer.ggml.model"]?.string else {
            throw PlexusError(.badModel, "the model has no tokenizer (tokenizer.ggml.model missing)")
        }
        guard model == "gpt2" else {
            throw PlexusError(.unsupported, "tokenizer type '\(model)' is not supported (byte-level BPE 'gpt2' is)")
        }
        guard let tokenValues = m["tokenizer.ggml.tokens"]?.array, !tokenValues.isEmpty else {
            throw PlexusError(.badModel, "the model has no vocabulary")
        }
        let tokens = try tokenValues.map { v -> String in
            guard let s = v.string else { throw PlexusError(.badModel, "a vocabulary entry is not a string") }
            return s
        }
        var types = [Int32](repeating: 1, count: tokens.count)
        if let t = m["tokenizer.ggml.token_type"]?.array {
            guard t.count == tokens.count else {
                throw PlexusError(.badModel, "token_type has \(t.count) entries for \(tokens.count) tokens")
            }
            types = t.map { Int32(clamping: $0.int ?? 1) }
        }
        let merges = try (m["tokenizer.ggml.merges"]?.array ?? []).map { v -> String in
            guard let s = v.string else { throw PlexusError(.badModel, "a merge is not a string") }
            return s
        }
        let preName = m["tokenizer.ggml.pre"]?.string ?? "gpt2"
        let pre: PreTokenizer
        switch preName {
        case "smollm": pre = .smollm
        case "gpt2", "default": pre = .gpt2
        default: throw PlexusError(.unsupported, "pre-tokenizer '\(preName)' is not supported (smollm, gpt2 are)")
        }
        func tokenID(_ key: String) throws -> TokenID? {
            guard let v = m[key]?.int else { return nil }
            guard v >= 0, v < tokens.count else { throw PlexusError(.badModel, "\(key) = \(v) is outside the vocabulary") }
            return TokenID(v)
        }
        try self.init(tokens: tokens, types: types, merges: merges, pre: pre,
                      bos: tokenID("tokenizer.ggml.bos_token_id"), eos: tokenID("tokenizer.ggml.eos_token_id"),
                      addBOS: {
                          if case .bool(let b)? = m["tokenizer.ggml.add_bos_token"] { return b }
                          return false
                      }())
    }

    /// Builds a tokenizer from its parts.
    public init(tokens: [String], types: [Int32], merges: [String], pre: PreTokenizer,
                bos: TokenID?, eos: TokenID?, addBOS: Bool) throws {
        guard tokens.count < Int(Int32.max), types.count == tokens.count else {
            throw PlexusError(.badModel, "vocabulary and token types disagree")
        }
        self.tokens = tokens
        self.types = types
        var ids: [String: TokenID] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = TokenID(i) }
        self.ids = ids
        var ranks: [String: Int] = [:]
        ranks.reserveCapacity(merges.count)
        for (i, merge) in merges.enumerated() where ranks[merge] == nil {
            guard merge.contains(" ") else { throw PlexusError(.badModel, "merge \(i) '\(merge.prefix(40))' has no space") }
            ranks[merge] = i
        }
        self.ranks = ranks
        self.pre = pre
        var specials: [(text: [UInt8], id: TokenID, type: Int32)] = []
        for (i, t) in types.enumerated() where t == 2 || t == 3 || t == 4 {
            let text = Array(tokens[i].utf8)
            if !text.isEmpty { specials.append((text, TokenID(i), t)) }
        }
        // Longest first, then by id, so that a longer special token wins.
        specials.sort { $0.text.count != $1.text.count ? $0.text.count > $1.text.count : $0.id < $1.id }
        self.specials = specials
        self.bos = bos
        self.eos = eos
        self.addBOS = addBOS
    }

    /// Vocabulary size.
    public var count: Int { tokens.count }

    /// Whether `id` is a control token (end of turn, chat markers, …).
    public func isControl(_ id: TokenID) -> Bool {
        id >= 0 && Int(id) < types.count && types[Int(id)] == 3
    }
}
