import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing
@testable import PlexusGateway

/// Admission's errors and defaults, one row each.
@Suite struct AdmissionTests {
    static let card = ModelCard(id: "m", weightsHash: Hash256.of([1]), architecture: "llama", quantization: "Q4_1", contextLength: 512,
                                license: "mit", capabilities: ["chat"], creator: KeyPair.deterministic("c").address, royaltyBps: 0)

    static func request(_ json: String) throws -> ChatRequest {
        try ChatRequest.read(Array(json.utf8))
    }

    static let chat = #""messages":[{"role":"user","content":"hi"}]"#

    /// (body, chat endpoint, expected status, expected code)
    static let refusals: [(String, Bool, Int, String)] = [
        (#"{"model":"nope",\#(chat)}"#, true, 404, "model_not_found"),
        (#"{"model":"m","n":9,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","n":0,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","tools":[],\#(chat)}"#, true, 400, "unsupported_parameter"),
        (#"{"model":"m","presence_penalty":2.5,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","logit_bias":{"-1":1},\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","logprobs":true,"top_logprobs":21,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","logprobs":6,"prompt":"p"}"#, false, 400, "invalid_value"),
        (#"{"model":"m","response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object","properties":{"a":{"format":"date"}}}}},\#(chat)}"#, true, 400, "unsupported_parameter"),
        (#"{"model":"m","max_tokens":0,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","max_tokens":513,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","max_completion_tokens":9999,"max_tokens":5,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","temperature":2.5,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","temperature":-0.1,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","top_p":0,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","top_p":1.01,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","top_k":-1,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","min_p":1.5,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","repetition_penalty":0,\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","stop":["a","b","c","d","e"],\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","stop":[""],\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","plexus":{"sort":"fastest"},\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","plexus":{"max_price":-1},\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","plexus":{"min_reputation":2},\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","plexus":{"timeout_ms":0},\#(chat)}"#, true, 400, "invalid_value"),
        (#"{"model":"m","messages":[]}"#, true, 400, "invalid_value"),
        (#"{"model":"m"}"#, true, 400, "invalid_value"),
        (#"{"model":"m","prompt":""}"#, false, 400, "invalid_value"),
        (#"{"model":"m",\#(chat)}"#, false, 400, "invalid_value"),
        (#"{"model":"m","prompt":"\#(String(repeating: "x", count: 4 * 512 + 64))"}"#, false, 400, "context_length_exceeded"),
    ]

    @Test(arguments: refusals)
    func refusesWithTheOpenAIError(_ row: (String, Bool, Int, String)) throws {
        let (body, chat, status, code) = row
        let req = try Self.request(body)
        let card = req.model == "m" ? Self.card : nil
        do {
            _ = try Admission.admit(req, chat: chat, card: card, defaults: .init())
            Issue.record("admitted \(body.prefix(80))")
        } catch let e as OpenAIError {
            #expect(e.status == status && e.code == code, "\(body.prefix(80)): \(e.status) \(e.code)")
        }
    }

    @Test func fillsDefaultsAndMergesThePolicy() throws {
        var defaults = Admission.Defaults()
        defaults.maxTokens = 77
        defaults.policy.sort = "price"
        defaults.policy.timeoutMs = 5_000
        let plain = try Admission.admit(try Self.request(#"{"model":"m",\#(Self.chat)}"#), chat: true, card: Self.card, defaults: defaults)
        #expect(plain.generate.maxTokens == 77 && plain.generate.temperature == 1 && plain.generate.topP == 1)
        #expect(plain.generate.seed == 0 && plain.generate.stop.isEmpty && plain.generate.continuation.isEmpty)
        #expect(plain.generate.messages == [.init(role: "user", content: "hi")] && plain.generate.prompt == nil)
        #expect(plain.policy.sort == "price" && plain.policy.timeoutMs == 5_000)
        #expect(plain.inputBound == 16 + 2 + 4 + 8)

        let set = try Admission.admit(try Self.request(#"""
            {"model":"m","max_completion_tokens":9,"max_tokens":500,"temperature":0,"top_p":0.5,"seed":-1,"stop":"END",
             "top_k":12,"min_p":0.05,"repetition_penalty":1.2,
             "plexus":{"sort":"latency","deny":["x"]},"prompt":"abc"}
            """#), chat: false, card: Self.card, defaults: defaults)
        // max_completion_tokens wins over max_tokens; a negative seed keeps its bits.
        #expect(set.generate.maxTokens == 9 && set.generate.temperature == 0 && set.generate.topP == 0.5)
        #expect(set.generate.seed == UInt64.max && set.generate.stop == ["END"] && set.generate.prompt == "abc")
        #expect(set.generate.topK == 12 && set.generate.minP == 0.05 && set.generate.repetitionPenalty == 1.2)
        #expect(plain.generate.topK == nil && plain.generate.minP == nil && plain.generate.repetitionPenalty == nil)
        #expect(set.policy.sort == "latency" && set.policy.deny == ["x"] && set.policy.timeoutMs == 5_000)
        #expect(set.inputBound == 4)
    }
}
