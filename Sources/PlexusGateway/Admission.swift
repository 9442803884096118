import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusWire

/// A request that passed admission: what every attempt asks a node, and under which policy.
struct AdmittedRequest: Sendable {
    var card: ModelCard
    /// The node request (each attempt fills in its continuation).
    var generate: GenerateRequest
    /// The gateway's default policy merged with the request's `plexus` object.
    var policy: RoutingPolicy
    /// At least the prompt's token count: byte-level BPE never makes more tokens than bytes
    /// (plus the template's own).
    var inputBound: Int
}

/// Admission: an OpenAI request validated and normalized, or the OpenAI error that
/// answers it. Pure: the model card (if the model exists) and the defaults come in.
enum Admission {
    /// What the gateway fills in where a request is silent.
    struct Defaults: Sendable {
        var policy = RoutingPolicy()
        var maxTokens = 256
    }

    /// Checks in order: model, `n`, `max_tokens` against the context, `temperature`,
    /// `top_p`, `top_k`, `min_p`, `repetition_penalty`, `stop`, the `plexus` policy, the
    /// messages or prompt, the prompt's size.
    static func admit(_ req: ChatRequest, chat: Bool, card: ModelCard?, defaults: Defaults) throws -> AdmittedRequest {
        guard let card else {
            throw OpenAIError(404, "invalid_request_error", "model_not_found", "The model '\(req.model.prefix(100))' does not exist.")
        }
        if let key = req.refused.first {
            throw OpenAIError.invalid("'\(key)' is not supported by this gateway", code: "unsupported_parameter")
        }
        if let n = req.n, !(1...8).contains(n) { throw OpenAIError.invalid("n must be 1...8", code: "invalid_value") }
        for (name, v) in [("presence_penalty", req.presencePenalty), ("frequency_penalty", req.frequencyPenalty)] {
            if let v, !(v.isFinite && (-2...2).contains(v)) { throw OpenAIError.invalid("\(name) must be -2...2", code: "invalid_value") }
        }
        if let bias = req.logitBias {
            guard bias.count <= 300, bias.allSatisfy({ (Int32($0.key) ?? -1) >= 0 && $0.value.isFinite && (-100...100).contains($0.value) }) else {
                throw OpenAIError.invalid("logit_bias maps up to 300 token ids to values in -100...100", code: "invalid_value")
            }
        }
        // Chat: `logprobs: true` with `top_logprobs` 0...20; completions: `logprobs` 0...5 alternatives.
        var logprobs: Int?
        if chat {
            if let top = req.topLogprobs {
                guard req.logprobs != nil else { throw OpenAIError.invalid("top_logprobs needs logprobs: true", code: "invalid_value") }
                guard (0...20).contains(top) else { throw OpenAIError.invalid("top_logprobs must be 0...20", code: "invalid_value") }
            }
            logprobs = req.logprobs.map { _ in req.topLogprobs ?? 0 }
        } else if let n = req.logprobs {
            guard (0...5).contains(n) else { throw OpenAIError.invalid("logprobs must be 0...5", code: "invalid_value") }
            logprobs = n
        }
        let maxTokens = req.maxCompletionTokens ?? req.maxTokens ?? defaults.maxTokens
        guard (1...Int(card.contextLength)).contains(maxTokens) else {
            throw OpenAIError.invalid("max_tokens must be 1...\(card.contextLength)", code: "invalid_value")
        }
        let temperature = req.temperature ?? 1
        guard (0...2).contains(temperature) else { throw OpenAIError.invalid("temperature must be 0...2", code: "invalid_value") }
        let topP = req.topP ?? 1
        guard topP > 0, topP <= 1 else { throw OpenAIError.invalid("top_p must be in (0, 1]", code: "invalid_value") }
        if let k = req.topK, !(0...1_000_000).contains(k) { throw OpenAIError.invalid("top_k must be 0...1000000", code: "invalid_value") }
        if let m = req.minP, !(m.isFinite && (0...1).contains(m)) { throw OpenAIError.invalid("min_p must be 0...1", code: "invalid_value") }
        if let r = req.repetitionPenalty, !(r.isFinite && (0.01...100).contains(r)) {
            throw OpenAIError.invalid("repetition_penalty must be 0.01...100", code: "invalid_value")
        }
        if let stop = req.stop, stop.count > 4 || stop.contains(where: { $0.isEmpty || $0.utf8.count > 256 }) {
            throw OpenAIError.invalid("stop takes up to 4 non-empty strings", code: "invalid_value")
        }
        var policy = defaults.policy
        if let p = req.plexus {
            do { try p.validate() } catch let e as PlexusError { throw OpenAIError.invalid(e.message, code: "invalid_value") }
            policy = policy.merged(with: p)
        }
        // response_format: compiled here to refuse what cannot be enforced; nodes compile it again.
        var responseFormat: String?
        if let f = req.responseFormat {
            do {
                responseFormat = try JSONGrammar.responseFormat(f) == nil ? nil : f
            } catch let e as PlexusError {
                throw OpenAIError.invalid("response_format: \(e.message)", code: e.code == .unsupported ? "unsupported_parameter" : "invalid_value")
            }
        }
        var gen = GenerateRequest(model: req.model, maxTokens: maxTokens, temperature: temperature, topP: topP,
                                  seed: UInt64(bitPattern: req.seed ?? 0), stop: req.stop ?? [],
                                  topK: req.topK, minP: req.minP, repetitionPenalty: req.repetitionPenalty)
        // Zero penalties and an empty bias change nothing: left out, any backend serves them.
        gen.presencePenalty = req.presencePenalty == 0 ? nil : req.presencePenalty
        gen.frequencyPenalty = req.frequencyPenalty == 0 ? nil : req.frequencyPenalty
        gen.logitBias = req.logitBias?.isEmpty == true ? nil : req.logitBias
        gen.logprobs = logprobs
        gen.responseFormat = responseFormat
        let inputBound: Int
        if chat {
            guard let messages = req.messages, !messages.isEmpty else { throw OpenAIError.invalid("messages must be a non-empty array", code: "invalid_value") }
            gen.messages = messages.map { ChatMessage(role: $0.role, content: $0.content) }
            inputBound = messages.reduce(16) { $0 + $1.content.utf8.count + $1.role.utf8.count + 8 }
        } else {
            guard let prompt = req.prompt, !prompt.isEmpty else { throw OpenAIError.invalid("prompt must be a non-empty string", code: "invalid_value") }
            gen.prompt = prompt
            inputBound = prompt.utf8.count + 1
        }
        guard inputBound < 4 * Int(card.contextLength) + 64 else {
            throw OpenAIError.invalid("The prompt exceeds the model's context of \(card.contextLength) tokens.", code: "context_length_exceeded")
        }
        return AdmittedRequest(card: card, generate: gen, policy: policy, inputBound: inputBound)
    }
}
