import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusWire

/// The OpenAI request bodies the gateway accepts.
package struct ChatRequest: Decodable {
    struct Message: Decodable {
        var role: String
        var content: String
        enum CodingKeys: String, CodingKey { case role, content }
        init(role: String, content: String) {
            self.role = role
            self.content = content
        }
        struct Part: Decodable { var type: String; var text: String? }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decode(String.self, forKey: .role)
            if let s = try? c.decode(String.self, forKey: .content) {
                content = s
            } else if let parts = try? c.decode([Part].self, forKey: .content) {
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw PlexusError(.unsupported, "only text content parts are supported")
                }
                content = parts.compactMap(\.text).joined()
            } else if try c.decodeNil(forKey: .content) {
                content = ""
            } else {
                throw PlexusError(.malformed, "message content must be a string or text parts")
            }
        }
    }
    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    var model: String
    var messages: [Message]?
    var prompt: String?
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    var topK: Int?
    var minP: Double?
    var repetitionPenalty: Double?
    var seed: Int64?
    var stop: [String]?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var n: Int?
    var plexus: RoutingPolicy?
    var presencePenalty: Double?
    var frequencyPenalty: Double?
    var logitBias: [String: Double]?
    /// Chat: whether to report logprobs; completions: how many alternatives (0...5).
    var logprobs: Int?
    var topLogprobs: Int?
    var user: String?
    /// `response_format` as compact JSON text (read from the body's tree, whichever reader took the rest).
    var responseFormat: String?
    /// OpenAI parameters present in the request that this gateway does not serve (refused, never ignored).
    var refused: [String] = []

    /// OpenAI request fields that change what is generated or returned and are not served here.
    static let refusedKeys: Set<String> = ["tools", "tool_choice", "functions", "function_call", "parallel_tool_calls",
                                           "suffix", "echo", "best_of", "prediction", "audio", "modalities", "reasoning_effort",
                                           "web_search_options"]

    enum CodingKeys: String, CodingKey {
        case model, messages, prompt, temperature, seed, stop, stream, n, plexus, logprobs, user
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p", streamOptions = "stream_options"
        case topK = "top_k", minP = "min_p", repetitionPenalty = "repetition_penalty"
        case presencePenalty = "presence_penalty", frequencyPenalty = "frequency_penalty", logitBias = "logit_bias", topLogprobs = "top_logprobs"
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        messages = try c.decodeIfPresent([Message].self, forKey: .messages)
        if let p = try? c.decodeIfPresent(String.self, forKey: .prompt) {
            prompt = p
        } else if let ps = try? c.decodeIfPresent([String].self, forKey: .prompt) {
            guard ps.count == 1 else { throw PlexusError(.unsupported, "one prompt per request is supported") }
            prompt = ps[0]
        }
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        maxCompletionTokens = try c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        minP = try c.decodeIfPresent(Double.self, forKey: .minP)
        repetitionPenalty = try c.decodeIfPresent(Double.self, forKey: .repetitionPenalty)
        seed = try c.decodeIfPresent(Int64.self, forKey: .seed)
        if let s = try? c.decodeIfPresent(String.self, forKey: .stop) {
            stop = [s]
        } else {
            stop = try c.decodeIfPresent([String].self, forKey: .stop)
        }
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        plexus = try c.decodeIfPresent(RoutingPolicy.self, forKey: .plexus)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        logitBias = try c.decodeIfPresent([String: Double].self, forKey: .logitBias)
        if let b = try? c.decodeIfPresent(Bool.self, forKey: .logprobs) {
            logprobs = b ? 0 : nil
        } else {
            logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        }
        topLogprobs = try c.decodeIfPresent(Int.self, forKey: .topLogprobs)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        let all = try decoder.container(keyedBy: AnyKey.self)
        refused = try all.allKeys.filter { try Self.refusedKeys.contains($0.stringValue) && !all.decodeNil(forKey: $0) }.map(\.stringValue).sorted()
    }
}

extension ChatRequest {
    /// Reads a request body: the hand-written reader for the common shapes, `JSONDecoder` for the rest.
    package static func read(_ bytes: [UInt8]) throws -> ChatRequest {
        let tree = JSONTree.parse(bytes, maxDepth: 64)
        if let tree, let r = ChatRequest(tree: tree) { return r }
        var r = try JSONDecoder().decode(ChatRequest.self, from: Data(bytes))
        if let f = tree?["response_format"], !f.isNull {
            r.responseFormat = f.text
        } else if tree == nil, bytes.count < 1 << 20, String(decoding: bytes, as: UTF8.self).contains("response_format") {
            throw PlexusError(.malformed, "response_format could not be read (standard JSON, nested at most 64 deep)")
        }
        return r
    }

    /// Reads the common shapes of a request from parsed JSON; nil for anything
    /// else (content parts, the `plexus` object, unusual types), which
    /// `JSONDecoder` then judges with its usual errors.
    init?(tree: JSONTree) {
        func message(_ item: JSONTree) -> Message? {
            guard let role = item["role"]?.string, let content = item.optional("content", \.string), item["content"] != nil else { return nil }
            return Message(role: role, content: content ?? "")
        }
        func messages(_ v: JSONTree) -> [Message]? {
            guard let items = v.array else { return nil }
            var out: [Message] = []
            for item in items {
                guard let m = message(item) else { return nil }
                out.append(m)
            }
            return out
        }
        func streamOptions(_ v: JSONTree) -> StreamOptions? {
            guard case .object = v, let usage = v.optional("include_usage", \.bool) else { return nil }
            return StreamOptions(includeUsage: usage)
        }
        guard case .object = tree, let model = tree["model"]?.string,
              let messages = tree.optional("messages", messages), let prompt = tree.optional("prompt", \.string),
              let maxTokens = tree.optional("max_tokens", \.int), let maxCompletionTokens = tree.optional("max_completion_tokens", \.int),
              let n = tree.optional("n", \.int), let temperature = tree.optional("temperature", \.double),
              let topP = tree.optional("top_p", \.double), let seed = tree.optional("seed", \.int64),
              let topK = tree.optional("top_k", \.int), let minP = tree.optional("min_p", \.double),
              let repetitionPenalty = tree.optional("repetition_penalty", \.double),
              let stop = tree.optional("stop", { $0.string.map { [$0] } ?? $0.strings }), let stream = tree.optional("stream", \.bool),
              let streamOptions = tree.optional("stream_options", streamOptions),
              tree["plexus"]?.isNull ?? true,
              let presencePenalty = tree.optional("presence_penalty", \.double), let frequencyPenalty = tree.optional("frequency_penalty", \.double),
              let logprobs = tree.optional("logprobs", \.bool), let topLogprobs = tree.optional("top_logprobs", \.int),
              let user = tree.optional("user", \.string),
              // logit_bias, and the refused fields, take the decoder's path.
              tree["logit_bias"] == nil, Self.refusedKeys.allSatisfy({ tree[$0] == nil })
        else { return nil }
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.logprobs = logprobs == true ? 0 : nil
        self.topLogprobs = topLogprobs
        self.user = user
        responseFormat = tree["response_format"].flatMap { $0.isNull ? nil : $0.text }
        self.model = model
        self.messages = messages
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.maxCompletionTokens = maxCompletionTokens
        self.n = n
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
        self.stop = stop
        self.stream = stream
        self.streamOptions = streamOptions
    }
}

/// An error in OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`.
public struct OpenAIError: Error, Sendable {
    public var status: Int
    public var type: String
    public var code: String
    public var message: String
    public var retryAfter: Int?

    public init(_ status: Int, _ type: String, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    static func invalid(_ m: String, code: String = "invalid_request") -> Self { .init(400, "invalid_request_error", code, m) }

    var json: [UInt8] {
        struct Body: Encodable {
            struct Inner: Encodable { var message: String; var type: String; var param: String?; var code: String }
            var error: Inner
        }
        return Array((try? JSONEncoder.compact.encode(Body(error: .init(message: message, type: type, param: nil, code: code)))) ?? Data())
    }
}

/// What the gateway streams to its client: text, and the log-probabilities of the tokens
/// that completed it when the request asked for them.
struct Emitted: Sendable {
    var text: String
    var logprobs: [LogprobEntry] = []
}

/// One output token's log-probability and its likely alternatives.
struct LogprobEntry: Sendable {
    var token: String
    var logprob: Double
    var top: [NodeEvent.Alternative]

    /// Chat's shape: `{"token", "logprob", "bytes", "top_logprobs": [...]}`.
    var chatJSON: String {
        func one(_ t: String, _ l: Double) -> String {
            "\"token\":\(FastJSON.quote(t)),\"logprob\":\(l),\"bytes\":[\(t.utf8.map(String.init).joined(separator: ","))]"
        }
        return "{" + one(token, logprob) + ",\"top_logprobs\":[" + top.map { "{" + one($0.text, $0.logprob) + "}" }.joined(separator: ",") + "]}"
    }

    /// Chat's `logprobs` object for `entries`.
    static func chat(_ entries: [LogprobEntry]) -> String {
        "{\"content\":[" + entries.map(\.chatJSON).joined(separator: ",") + "],\"refusal\":null}"
    }

    /// Completions' `logprobs` object: parallel arrays, with the text offset of each token from `offset`.
    static func completion(_ entries: [LogprobEntry], offset: Int) -> String {
        var offsets: [Int] = [], at = offset
        for e in entries {
            offsets.append(at)
            at += e.token.utf8.count
        }
        let tops = entries.map { e in
            "{" + e.top.map { FastJSON.quote($0.text) + ":\($0.logprob)" }.joined(separator: ",") + "}"
        }
        return "{\"tokens\":[" + entries.map { FastJSON.quote($0.token) }.joined(separator: ",") + "],\"token_logprobs\":["
            + entries.map { String($0.logprob) }.joined(separator: ",") + "],\"top_logprobs\":[" + tops.joined(separator: ",")
            + "],\"text_offset\":[" + offsets.map(String.init).joined(separator: ",") + "]}"
    }
}

/// Response bodies, built as JSON objects in OpenAI's shapes.
enum OpenAIShapes {
    static func data(_ object: [String: Any]) -> [UInt8] {
        let d = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(d)
    }

    static func sse(_ object: [String: Any]) -> [UInt8] { Array("data: ".utf8) + data(object) + Array("\n\n".utf8) }

    static let done = Array("data: [DONE]\n\n".utf8)
}
