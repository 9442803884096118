import PlexusCore
import PlexusEngine

extension GenerateRequest {
    /// The sampling the built-in engine applies to this request (a verifier applies the same).
    /// A `logit_bias` key that is not a token id reads as id -1, which validation refuses.
    public var sampling: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK ?? 0, topP: topP, minP: minP ?? 0, repetitionPenalty: repetitionPenalty ?? 1, seed: seed,
                           presencePenalty: presencePenalty ?? 0, frequencyPenalty: frequencyPenalty ?? 0,
                           logitBias: (logitBias ?? [:]).map { .init(token: TokenID($0.key) ?? -1, bias: $0.value) })
    }

    /// The prompt's tokens: chat messages through the model's template, or raw text.
    public func promptTokens(model: LlamaModel, template: ChatTemplate?) throws -> [TokenID] {
        if let messages {
            guard let template else { throw PlexusError(.unsupported, "the model has no chat template") }
            guard !messages.isEmpty else { throw PlexusError(.malformed, "messages are empty") }
            return try template.tokens(messages, tokenizer: model.tokenizer)
        }
        guard let prompt, !prompt.isEmpty else { throw PlexusError(.malformed, "the request has neither messages nor a prompt") }
        return try model.tokenizer.encode(prompt)
    }
}
