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
        if let n = req.n, n != 1 { throw OpenAIError.invalid("n must be 1: this gateway returns one choice per request", code: "unsupported_parameter") }
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
        var gen = GenerateRequest(model: req.model, maxTokens: maxTokens, temperature: temperature, topP: topP,
                                  seed: UInt64(bitPattern: req.seed ?? 0), stop: req.stop ?? [],
                                  topK: req.topK, minP: req.minP, repetitionPenalty: req.repetitionPenalty)
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
