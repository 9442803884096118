import Foundation
import PlexusCore
@testable import PlexusEngine
import PlexusTestKit
import Testing

/// Structured output: the constraint's automaton, schema compilation, and generation that
/// always parses and validates.
@Suite struct JSONConstraintTests {
    static func grammar(_ schema: String) throws -> JSONGrammar {
        try #require(try JSONGrammar.responseFormat(#"{"type":"json_schema","json_schema":{"name":"t","strict":true,"schema":\#(schema)}}"#))
    }

    static func accepts(_ g: JSONGrammar, _ text: String) -> (prefix: Bool, complete: Bool) {
        var s = g.start()
        guard s.feed(Array(text.utf8)) else { return (false, false) }
        return (true, s.isComplete)
    }

    static let person = #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"},"maxItems":3},"role":{"enum":["admin","user"]},"score":{"type":["number","null"]},"ok":{"type":"boolean"}},"required":["name","age","tags","role","score","ok"],"additionalProperties":false}"#

    @Test func theAutomatonTakesExactlyTheValidOutputs() throws {
        let g = try Self.grammar(Self.person)
        let good = [#"{"name":"Ann","age":31,"tags":[],"role":"user","score":null,"ok":true}"#,
                    #"{"name":"B \"q\" \\ \u00e9","age":-0,"tags":["a","b","c"],"role":"admin","score":-1.5e+3,"ok":false}"#]
        for t in good { #expect(Self.accepts(g, t) == (true, true), "\(t)") }
        // Every proper prefix of a good output is a valid prefix, not complete.
        for t in good { for n in 0..<t.utf8.count { #expect(Self.accepts(g, String(decoding: Array(t.utf8).prefix(n), as: UTF8.self)) == (true, false)) } }
        let bad = [#"{"age":1"#, #"{"name":"a","age":1.5"#, #"{"name":"a","age":01"#, #"{"name":"a","age":1,"tags":["a","b","c","d"]"#,
                   #"{"name":"a","age":1,"tags":[],"role":"root""#, #"{"name":"a","age":1,"tags":[],"role":"user","score":true"#,
                   #"{"name":"a","age":1,"tags":[],"role":"user","score":1,"ok":true,"x":1"#, #"{"name":"a","age":1,"tags":[],"role":"user","score":1}"#,
                   #"{ "name""#, "[", #"{"name":"a\x"#, "{\"name\":\"\n", #"{"name":"a","age":1,"tags":[],"role":"user","score":1,"ok":true}}"#]
        for t in bad { #expect(!(Self.accepts(g, t).prefix && Self.accepts(g, t).complete) && (Self.accepts(g, t).prefix == false), "\(t)") }
    }

    @Test func jsonObjectModeTakesAnyObjectOnly() throws {
        let g = try #require(try JSONGrammar.responseFormat(#"{"type":"json_object"}"#))
        for t in [#"{}"#, #"{"a":[1,{"b":null}],"c":"d","e":-2.5E-3,"f":true}"#] { #expect(Self.accepts(g, t) == (true, true), "\(t)") }
        for t in ["[1]", "\"s\"", "1", #"{"a"}"#, #"{"a":}"#, "{,}"] { #expect(!Self.accepts(g, t).complete, "\(t)") }
        #expect(try JSONGrammar.responseFormat(#"{"type":"text"}"#) == nil)
    }

    /// A constrained answer re-executes exactly (the replay applies the same mask), and the
    /// unconstrained reading of the same tokens does not pass for it.
    @Test func constrainedAnswersReplayExactly() throws {
        let dir = try TemporaryDirectory("plexus-json")
        defer { dir.remove() }
        let m = try LlamaModel(path: TinyModel.write(to: dir.path + "/tiny.gguf"))
        let format = #"{"type":"json_schema","json_schema":{"name":"t","schema":{"type":"object","properties":{"a":{"type":"string","maxLength":6},"b":{"type":"array","items":{"type":"integer"},"maxItems":2}},"required":["a","b"]}}}"#
        let prompt = try m.tokenizer.encode("hello there", addBOS: false)
        for seed in 0..<6 as Range<UInt64> {
            let r = GenerationRequest(prompt: prompt, maxTokens: 80, sampling: .init(temperature: 1, seed: seed), responseFormat: format)
            let g = try Generator(model: m, threads: 1).generate(r)
            #expect(g.finish != .length, "\(g.text)")
            #expect(JSONTree.parse(Array(g.text.utf8)) != nil, "\(g.text)")
            let replay = try Generator(model: m, threads: 2).replay(ReplayRequest(prompt: prompt, output: g.tokens, maxTokens: 80, sampling: r.sampling,
                                                                                  responseFormat: format))
            #expect(replay.ok && replay.commitment == g.commitment, "seed \(seed)")
            let free = try Generator(model: m, threads: 1).replay(ReplayRequest(prompt: prompt, output: g.tokens, maxTokens: 80, sampling: r.sampling))
            #expect(!free.ok, "random weights never write this JSON unconstrained")
        }
    }

    @Test func schemasBeyondTheSubsetAreRefusedClearly() throws {
        for schema in [#"{"type":"object","properties":{"a":{"type":"string","pattern":"^a"}}}"#,
                       #"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":true}"#,
                       #"{"type":"object","properties":{"a":{"anyOf":[{"type":"object"},{"type":"object","properties":{}}]}}}"#,
                       #"{"type":"array","items":{"type":"string"}}"#,
                       ##"{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"object","properties":{"b":{"$ref":"#/$defs/A"}}}}}"##,
                       #"{"type":"object","required":["x"],"properties":{}}"#,
                       #"{"type":"object","properties":{"a":{"type":"date"}}}"#] {
            #expect(throws: PlexusError.self, "\(schema)") { _ = try Self.grammar(schema) }
        }
        for format in [#"{"type":"xml"}"#, #"{"type":"json_schema"}"#, "[]"] {
            #expect(throws: PlexusError.self, "\(format)") { _ = try JSONGrammar.responseFormat(format) }
        }
        // $defs, as Pydantic writes nested models.
        let nested = try Self.grammar(##"{"$defs":{"Step":{"properties":{"explanation":{"title":"Explanation","type":"string"},"output":{"type":"string"}},"required":["explanation","output"],"title":"Step","type":"object","additionalProperties":false}},"properties":{"steps":{"items":{"$ref":"#/$defs/Step"},"type":"array"},"final_answer":{"type":"string"}},"required":["steps","final_answer"],"title":"Math","type":"object","additionalProperties":false}"##)
        #expect(Self.accepts(nested, #"{"steps":[{"explanation":"e","output":"o"}],"final_answer":"x"}"#) == (true, true))
    }
}

/// 200 prompts over 10 schemas on the default model (`PLEXUS_STRUCTURED_PROMPTS`, as `.ci/run`
/// sets it; 20 by default): every answer parses and validates, and each is what the same
/// request gives alone.
@Suite(.serialized) struct StructuredOutputModelTests {
    static let schemas: [String] = [
        JSONConstraintTests.person,
        #"{"type":"object","properties":{"city":{"type":"string"},"population":{"type":"integer"}},"required":["city","population"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"colour":{"enum":["red","green","blue"]},"hex":{"type":"string"}},"required":["colour","hex"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"price":{"type":"number"}},"required":["name","price"],"additionalProperties":false},"minItems":1,"maxItems":3}},"required":["items"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"answer":{"type":"boolean"},"confidence":{"type":"number"}},"required":["answer","confidence"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"title":{"type":"string"},"author":{"type":"object","properties":{"first":{"type":"string"},"last":{"type":"string"}},"required":["first","last"],"additionalProperties":false},"year":{"type":"integer"}},"required":["title","author","year"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"numbers":{"type":"array","items":{"type":"integer"},"maxItems":5}},"required":["numbers"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"sentiment":{"enum":["positive","negative","neutral"]},"reason":{"type":["string","null"]}},"required":["sentiment","reason"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"ok":{"const":true},"code":{"enum":[200,404,500]},"detail":{"type":"string"}},"required":["ok","code"],"additionalProperties":false}"#,
        #"{"type":"object","properties":{"matrix":{"type":"array","items":{"type":"array","items":{"type":"number"},"maxItems":3},"maxItems":3},"label":{"type":"string"}},"required":["matrix","label"],"additionalProperties":false}"#,
    ]

    static let topics = ["a person", "a city", "a colour", "a shopping list", "a yes/no question about the sea", "a book", "some numbers",
                         "a film review", "a web request", "a small matrix", "your favourite food", "the weather", "a holiday", "a robot",
                         "music", "a garden", "the moon", "a train journey", "a cat", "coffee"]

    /// Checks `value` against the schema subset the grammar takes (the test's own reading of it).
    static func validates(_ value: JSONTree, _ schema: JSONTree, root: JSONTree) -> Bool {
        if let ref = schema["$ref"]?.string, let name = ref.split(separator: "/").last, let target = root["$defs"]?[String(name)] {
            return validates(value, target, root: root)
        }
        if let e = schema["enum"]?.array { return e.contains(value) }
        if let c = schema["const"] { return c == value }
        let types = schema["type"]?.strings ?? [schema["type"]?.string ?? "any"]
        return types.contains { t in
            switch (t, value) {
            case let ("object", .object(fields)):
                let required = schema["required"]?.strings ?? []
                let keys = fields.map(\.0)
                return Set(keys).count == keys.count && required.allSatisfy(keys.contains)
                    && fields.allSatisfy { k, v in schema["properties"]?[k].map { validates(v, $0, root: root) } ?? false }
            case let ("array", .array(items)):
                return items.count >= (schema["minItems"]?.int ?? 0) && items.count <= (schema["maxItems"]?.int ?? .max)
                    && items.allSatisfy { validates($0, schema["items"] ?? .object([]), root: root) }
            case ("string", .string): return true
            case let ("integer", .number(text)): return !text.contains(where: { ".eE".contains($0) })
            case ("number", .number): return true
            case ("boolean", .bool): return true
            case ("null", .null): return true
            case ("any", _): return true
            default: return false
            }
        }
    }

    @Test func everyAnswerParsesAndValidates() throws {
        let m = try LlamaModel(path: TestModels.smolLM2())
        let template = try ChatTemplate(source: try #require(m.file.metadata["tokenizer.chat_template"]?.string))
        // 200 in `.ci/run`'s own step; fewer in the suite, whose network tests run beside it.
        let count = Int(ProcessInfo.processInfo.environment["PLEXUS_STRUCTURED_PROMPTS"] ?? "") ?? 20
        var requests: [GenerationRequest] = []
        for i in 0..<count {
            let schema = Self.schemas[i % Self.schemas.count]
            let format = #"{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":\#(schema)}}"#
            let prompt = try template.tokens([ChatMessage(role: "user", content: "Answer in JSON about \(Self.topics[i / Self.schemas.count % Self.topics.count]).")],
                                             tokenizer: m.tokenizer)
            let sampling = i % 3 == 0 ? SamplingParameters() : SamplingParameters(temperature: 0.7, topP: 0.95, seed: UInt64(i))
            requests.append(GenerationRequest(prompt: prompt, maxTokens: 800, sampling: sampling, responseFormat: format))
        }
        let scheduler = BatchScheduler(model: m, slots: 8, stepTokens: 32, threads: 2)
        let outcomes = try BatchSchedulerTests.together(scheduler, requests, delaysMs: requests.map { _ in 0 })
        var valid = 0, truncated = 0
        for (i, o) in outcomes.enumerated() {
            let schema = try #require(JSONTree.parse(Array(Self.schemas[i % Self.schemas.count].utf8)))
            if o.finish == .length {
                truncated += 1
                print("truncated \(i): \(o.text.prefix(400))")
                continue
            }
            // Parsed by Foundation too, as a client would.
            let parses = (try? JSONSerialization.jsonObject(with: Data(o.text.utf8))) != nil
            let ok = parses && (JSONTree.parse(Array(o.text.utf8)).map { Self.validates($0, schema, root: schema) } ?? false)
            #expect(ok, "request \(i): \(o.text)")
            if ok { valid += 1 }
        }
        // Spot-check exactness against the request alone (constrained decoding keeps the bits).
        for i in stride(from: 0, to: count, by: max(1, count / 10)) {
            #expect(outcomes[i] == (try BatchSchedulerTests.alone(m, requests[i])), "request \(i)")
        }
        #expect(truncated == 0, "\(truncated) answers hit max_tokens")
        print("structured output: \(valid)/\(count) answers parse and validate over \(Self.schemas.count) schemas (\(truncated) truncated)")
    }
}
