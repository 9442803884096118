import PlexusCore

/// One chat message.
public struct ChatMessage: Sendable, Hashable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A model's chat template, recognised from the GGUF's Jinja source.
///
/// Plexus does not run arbitrary Jinja: it recognises the template families it
/// can render exactly (ChatML, as SmolLM2 uses, with or without a default
/// system prompt) and refuses others with a clear error. Rendering keeps the
/// template's markers apart from message text, so that text a user writes
/// (say, a literal `<|im_end|>`) is tokenized as text and can never forge a
/// control token.
public struct ChatTemplate: Sendable, Hashable {
    /// The families Plexus renders.
    public enum Family: Sendable, Hashable {
        /// `<|im_start|>role\ncontent<|im_end|>\n`, optionally inserting a
        /// system message when the conversation does not start with one.
        case chatML(defaultSystem: String?)
    }

    public let family: Family

    /// Roles a message may have.
    public static let roles: Set<String> = ["system", "user", "assistant", "tool"]

    /// Recognises `source` (the `tokenizer.chat_template` metadata).
    public init(source: String) throws {
        guard source.contains("<|im_start|>"), source.contains("<|im_end|>"),
              source.contains("message['role']") || source.contains("message.role") else {
            throw PlexusError(.unsupported, "this model's chat template is not one Plexus can render (ChatML is supported)")
        }
        var defaultSystem: String?
        let marker = "<|im_start|>system\n"
        if source.contains("messages[0]['role'] != 'system'"), let start = source.range(of: marker),
           let end = source.range(of: "<|im_end|>", range: start.upperBound..<source.endIndex) {
            defaultSystem = String(source[start.upperBound..<end.lowerBound])
        }
        family = .chatML(defaultSystem: defaultSystem)
    }

    /// A piece of a rendered prompt: template markup (tokenized with special
    /// tokens) or message text (tokenized as plain text).
    public enum Segment: Sendable, Hashable {
        case markup(String)
        case text(String)
    }

    /// Renders the conversation, ending with the assistant's turn opener when
    /// `addGenerationPrompt` is set.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> [Segment] {
        guard !messages.isEmpty else { throw PlexusError(.malformed, "a chat needs at least one message") }
        var out: [Segment] = []
        switch family {
        case .chatML(let defaultSystem):
            if let defaultSystem, messages[0].role != "system" {
                out.append(.markup("<|im_start|>system\n"))
                out.append(.text(defaultSystem))
                out.append(.markup("<|im_end|>\n"))
            }
            for m in messages {
                guard Self.roles.contains(m.role) else {
                    throw PlexusError(.malformed, "unknown chat role '\(m.role.prefix(32))' (system, user, assistant or tool)")
                }
                out.append(.markup("<|im_start|>\(m.role)\n"))
                if !m.content.isEmpty { out.append(.text(m.content)) }
                out.append(.markup("<|im_end|>\n"))
            }
            if addGenerationPrompt { out.append(.markup("<|im_start|>assistant\n")) }
        }
        return out
    }

    /// The rendered conversation as one string (what the Jinja template prints).
    public func text(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
        try render(messages, addGenerationPrompt: addGenerationPrompt).map {
            switch $0 {
            case .markup(let s), .text(let s): s
            }
        }.joined()
    }

    /// Prompt tokens for the conversation.
    public func tokens(_ messages: [ChatMessage], tokenizer: Tokenizer, addGenerationPrompt: Bool = true) throws -> [TokenID] {
        var out: [TokenID] = []
        if tokenizer.addBOS, let bos = tokenizer.bos { out.append(bos) }
        for segment in try render(messages, addGenerationPrompt: addGenerationPrompt) {
            switch segment {
            case .markup(let s): out += try tokenizer.encode(s, parseSpecial: true, addBOS: false)
            case .text(let s): out += try tokenizer.encode(s, parseSpecial: false, addBOS: false)
            }
        }
        return out
    }
}
