import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger

/// What a gateway asks a node to generate (`POST /v1/generate`, JSON).
public struct GenerateRequest: Codable, Sendable, Hashable {
    /// The model card id.
    public var model: String
    /// Chat messages, rendered with the model's own template by the node.
    public var messages: [ChatMessage]?
    /// Raw prompt text (completions), used when `messages` is nil.
    public var prompt: String?
    /// Output tokens already streamed by an earlier node (failover).
    public var continuation: [TokenID]
    /// Most tokens to generate in total, counting the continuation.
    public var maxTokens: Int
    public var temperature: Double
    public var topP: Double
    public var seed: UInt64
    public var stop: [String]
    /// Sampling beyond OpenAI's own parameters (absent: off), as llama.cpp's server takes them.
    public var topK: Int?
    public var minP: Double?
    public var repetitionPenalty: Double?
    /// OpenAI's penalties over the sampler's window of recent tokens, and biases by token id (absent: none).
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    public var logitBias: [String: Double]?
    /// Report each token's log-probability and this many alternatives (absent: none).
    public var logprobs: Int?
    /// OpenAI's `response_format` object as compact JSON text (absent: free text): the output is
    /// constrained to it token by token, and a verifier re-executes the same constraint.
    public var responseFormat: String?

    public init(model: String, messages: [ChatMessage]? = nil, prompt: String? = nil, continuation: [TokenID] = [],
                maxTokens: Int, temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0, stop: [String] = [],
                topK: Int? = nil, minP: Double? = nil, repetitionPenalty: Double? = nil) {
        self.model = model
        self.messages = messages
        self.prompt = prompt
        self.continuation = continuation
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.stop = stop
        self.topK = topK
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
    }
}

/// A gateway's signed authorisation for one request to one node, sent hex-encoded
/// in the `x-plexus-envelope` header.
public struct Envelope: Sendable, Hashable {
    public var requestId: Hash256
    public var requestor: Address
    public var gateway: Address
    /// The node key the request is for.
    public var node: Address
    /// SHA-256 of the request body bytes.
    public var bodyHash: Hash256
    public var expiresAtMillis: UInt64
    public var signature: Signature

    public static let header = "x-plexus-envelope"
    static let domain = Array("plexus-envelope-v1".utf8)

    public init(requestId: Hash256, requestor: Address, gateway: Address, node: Address, bodyHash: Hash256, expiresAtMillis: UInt64) {
        self.requestId = requestId
        self.requestor = requestor
        self.gateway = gateway
        self.node = node
        self.bodyHash = bodyHash
        self.expiresAtMillis = expiresAtMillis
        signature = .empty
    }

    public func signingBytes(chainId: String) -> [UInt8] {
        var w = CanonicalWriter(capacity: 200)
        w.write(fixed: Self.domain)
        w.write(chainId)
        w.write(requestId); w.write(requestor); w.write(gateway); w.write(node); w.write(bodyHash); w.write(expiresAtMillis)
        return w.bytes
    }

    public mutating func sign(_ key: KeyPair, chainId: String) {
        gateway = key.address
        signature = key.sign(signingBytes(chainId: chainId))
    }

    public var hex: String {
        var w = CanonicalWriter(capacity: 260)
        w.write(requestId); w.write(requestor); w.write(gateway); w.write(node); w.write(bodyHash); w.write(expiresAtMillis)
        w.write(signature)
        return Hex.encode(w.bytes)
    }

    public init(hex: String) throws {
        guard hex.utf8.count <= 1_024 else { throw PlexusError(.tooLarge, "envelope header is too long") }
        var r = CanonicalReader(try Hex.decode(hex))
        requestId = try r.readHash()
        requestor = try r.readAddress()
        gateway = try r.readAddress()
        node = try r.readAddress()
        bodyHash = try r.readHash()
        expiresAtMillis = try r.readUInt64()
        signature = try r.readSignature()
        try r.expectEnd()
    }
}

/// One server-sent event of a node's answer stream.
public struct NodeEvent: Codable, Sendable {
    /// "token", "done" or "error".
    public var type: String
    public var token: TokenID?
    public var text: String?
    /// For "done": why generation ended ("stop", "length", "eos") and the
    /// prompt tokens the node processed.
    public var finishReason: String?
    public var promptTokens: Int?
    /// For "done": the node-signed receipt for this node's share.
    public var receipt: Receipt?
    /// For "error".
    public var code: String?
    public var message: String?
    /// For "token", when the request asked for them: the token's own text, its log-probability
    /// and the most likely alternatives.
    public var tokenText: String?
    public var logprob: Double?
    public var top: [Alternative]?
    /// For "done": prompt tokens whose positions came from the node's prefix cache.
    public var cachedTokens: Int?

    /// A likely token at a position.
    public struct Alternative: Codable, Sendable, Hashable {
        public var token: TokenID
        public var text: String
        public var logprob: Double
        public init(token: TokenID, text: String, logprob: Double) {
            self.token = token
            self.text = text
            self.logprob = logprob
        }
    }

    public static func token(_ id: TokenID, _ text: String) -> NodeEvent { NodeEvent(type: "token", token: id, text: text) }
    public static func error(_ e: PlexusError) -> NodeEvent { NodeEvent(type: "error", code: e.code.rawValue, message: e.message) }

    public init(type: String, token: TokenID? = nil, text: String? = nil, finishReason: String? = nil, promptTokens: Int? = nil,
                receipt: Receipt? = nil, code: String? = nil, message: String? = nil) {
        self.type = type
        self.token = token
        self.text = text
        self.finishReason = finishReason
        self.promptTokens = promptTokens
        self.receipt = receipt
        self.code = code
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case type, token, text, finishReason, promptTokens, receipt, receiptBytes, code, message, tokenText, logprob, top, cachedTokens
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        token = try c.decodeIfPresent(TokenID.self, forKey: .token)
        text = try c.decodeIfPresent(String.self, forKey: .text)
        finishReason = try c.decodeIfPresent(String.self, forKey: .finishReason)
        promptTokens = try c.decodeIfPresent(Int.self, forKey: .promptTokens)
        // The receipt comes as an object, or as its canonical bytes in hex (what nodes send).
        if let hex = try c.decodeIfPresent(String.self, forKey: .receiptBytes) {
            receipt = try VersionedReceipt(canonicalBytes: Hex.decode(hex)).receipt
        } else {
            receipt = try c.decodeIfPresent(Receipt.self, forKey: .receipt)
        }
        code = try c.decodeIfPresent(String.self, forKey: .code)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        tokenText = try c.decodeIfPresent(String.self, forKey: .tokenText)
        logprob = try c.decodeIfPresent(Double.self, forKey: .logprob)
        top = try c.decodeIfPresent([Alternative].self, forKey: .top)
        if let t = top, t.count > 20 { throw PlexusError(.malformed, "more than 20 alternatives") }
        cachedTokens = try c.decodeIfPresent(Int.self, forKey: .cachedTokens)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(token, forKey: .token)
        try c.encodeIfPresent(text, forKey: .text)
        try c.encodeIfPresent(finishReason, forKey: .finishReason)
        try c.encodeIfPresent(promptTokens, forKey: .promptTokens)
        try c.encodeIfPresent(receipt, forKey: .receipt)
        try c.encodeIfPresent(code, forKey: .code)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(tokenText, forKey: .tokenText)
        try c.encodeIfPresent(logprob, forKey: .logprob)
        try c.encodeIfPresent(top, forKey: .top)
        try c.encodeIfPresent(cachedTokens, forKey: .cachedTokens)
    }

    /// `data: {json}\n\n`.
    public var sse: [UInt8] {
        let json = (try? JSONEncoder.compact.encode(self)) ?? Data()
        return Array("data: ".utf8) + Array(json) + Array("\n\n".utf8)
    }
}

extension JSONEncoder {
    /// Sorted keys, no extra whitespace.
    public static var compact: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}

/// SHA-256 of a token sequence (each id as 4 big-endian bytes): a receipt's output hash.
public func outputHash(_ tokens: [TokenID]) -> Hash256 {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(tokens.count * 4)
    for t in tokens { withUnsafeBytes(of: UInt32(bitPattern: t).bigEndian) { bytes += $0 } }
    return Hash256.of(bytes)
}

extension GenerateRequest {
    /// The request as JSON, written by hand (the same document `JSONEncoder.compact` writes).
    public var json: [UInt8] {
        // What the hand-written form leaves to JSONEncoder: odd numbers and the rarer fields.
        guard temperature.isFinite, topP.isFinite, minP?.isFinite ?? true, repetitionPenalty?.isFinite ?? true,
              presencePenalty == nil, frequencyPenalty == nil, logitBias == nil, logprobs == nil, responseFormat == nil else {
            return (try? Array(JSONEncoder.compact.encode(self))) ?? []
        }
        // Keys in sorted order; absent optionals are left out, as JSONEncoder leaves them.
        var s = "{\"continuation\":[" + continuation.map(String.init).joined(separator: ",") + "],\"maxTokens\":\(maxTokens)"
        if let messages {
            s += ",\"messages\":[" + messages.map { "{\"content\":\(FastJSON.quote($0.content)),\"role\":\(FastJSON.quote($0.role))}" }.joined(separator: ",") + "]"
        }
        if let minP { s += ",\"minP\":\(minP)" }
        s += ",\"model\":" + FastJSON.quote(model)
        if let prompt { s += ",\"prompt\":" + FastJSON.quote(prompt) }
        if let repetitionPenalty { s += ",\"repetitionPenalty\":\(repetitionPenalty)" }
        s += ",\"seed\":\(seed),\"stop\":[" + stop.map(FastJSON.quote).joined(separator: ",") + "]"
        s += ",\"temperature\":\(temperature)"
        if let topK { s += ",\"topK\":\(topK)" }
        s += ",\"topP\":\(topP)}"
        return Array(s.utf8)
    }

    /// Reads a request from parsed JSON; nil for anything `JSONDecoder` should judge instead.
    public init?(tree: JSONTree) {
        func messages(_ v: JSONTree) -> [ChatMessage]? {
            guard let items = v.array else { return nil }
            var out: [ChatMessage] = []
            for item in items {
                guard let role = item["role"]?.string, let content = item["content"]?.string else { return nil }
                out.append(ChatMessage(role: role, content: content))
            }
            return out
        }
        guard case .object = tree, let model = tree["model"]?.string, let cont = tree["continuation"]?.array,
              let maxTokens = tree["maxTokens"]?.int, let temperature = tree["temperature"]?.double, let topP = tree["topP"]?.double,
              let seed = tree["seed"]?.uint64, let stop = tree["stop"]?.strings,
              let messages = tree.optional("messages", messages), let prompt = tree.optional("prompt", \.string),
              let topK = tree.optional("topK", \.int), let minP = tree.optional("minP", \.double),
              let repetitionPenalty = tree.optional("repetitionPenalty", \.double),
              ["presencePenalty", "frequencyPenalty", "logitBias", "logprobs", "responseFormat"].allSatisfy({ tree[$0] == nil }) else { return nil }
        var continuation: [TokenID] = []
        continuation.reserveCapacity(cont.count)
        for t in cont {
            guard let v = t.int64, let id = TokenID(exactly: v) else { return nil }
            continuation.append(id)
        }
        self.init(model: model, messages: messages, prompt: prompt, continuation: continuation, maxTokens: maxTokens,
                  temperature: temperature, topP: topP, seed: seed, stop: stop, topK: topK, minP: minP, repetitionPenalty: repetitionPenalty)
    }

    /// Reads a request body: the hand-written reader first, `JSONDecoder` for anything else.
    public static func decode(_ body: [UInt8]) throws -> GenerateRequest {
        if let tree = JSONTree.parse(body), let r = GenerateRequest(tree: tree) { return r }
        return try JSONDecoder().decode(GenerateRequest.self, from: Data(body))
    }
}
