import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusEngine
import PlexusTestKit
import Testing

/// The OpenAI fields clients send every day, through a whole local network: logprobs in both
/// formats and streamed, logit_bias, penalties, the usage details with cached prompt tokens,
/// and a clear 400 for what is not served.
@Suite(.serialized) struct RequestFieldsTests {
    @Test func openAIFieldsAreServedOrRefusedClearly() async throws {
        let dir = try TemporaryDirectory("plexus-fields")
        defer { dir.remove() }
        let modelPath = try TestModels.smolLM2()
        let store = (modelPath as NSString).deletingLastPathComponent
        let up = try PlexusProcess(["up", "--dir", dir.path + "/up", "--port", "0", "--store", store],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: dir.path + "/up", seconds: 240)
        let tokenizer = try LlamaModel(path: modelPath).tokenizer

        func send(_ body: [String: Any], path: String = "/chat/completions") async throws -> (Int, [String: Any], String) {
            var r = HTTPClientRequest(url: info.baseURL + path)
            r.method = .POST
            r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
            r.headers.add(name: "content-type", value: "application/json")
            r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
            let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(300))
            let text = String(buffer: try await resp.body.collect(upTo: 1 << 24))
            return (Int(resp.status.code), (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:], text)
        }
        let question: [String: Any] = ["role": "user", "content": "Name a colour."]
        // Pinned to one node (the cheapest), so that its prefix cache serves the repeat.
        let base: [String: Any] = ["model": "smollm2-135m", "messages": [question], "max_tokens": 8, "temperature": 0, "plexus": ["sort": "price"]]
        func with(_ extra: [String: Any]) -> [String: Any] { base.merging(extra) { $1 } }

        // Chat logprobs: one entry per token, alternatives most likely first, greedy picks the first.
        let (s1, j1, t1) = try await send(with(["logprobs": true, "top_logprobs": 3]))
        #expect(s1 == 200, "\(t1)")
        let choice = (j1["choices"] as? [[String: Any]])?.first ?? [:]
        let content = (choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
        let usage = j1["usage"] as? [String: Any] ?? [:]
        #expect(content.count == usage["completion_tokens"] as? Int, "\(t1)")
        for entry in content {
            let lp = entry["logprob"] as? Double ?? 1
            let top = entry["top_logprobs"] as? [[String: Any]] ?? []
            #expect(lp <= 0 && top.count == 3)
            let tops = top.compactMap { $0["logprob"] as? Double }
            #expect(tops == tops.sorted(by: >) && abs((tops.first ?? 0) - lp) < 1e-9 && top.first?["token"] as? String == entry["token"] as? String)
        }
        #expect((content.map { $0["token"] as? String ?? "" }.joined()) == (choice["message"] as? [String: Any])?["content"] as? String)
        #expect((usage["completion_tokens_details"] as? [String: Any])?["reasoning_tokens"] as? Int == 0)

        // The same prompt again: its prefix comes from the node's cache, and the answer is the same.
        let (s2, j2, _) = try await send(with(["logprobs": true, "top_logprobs": 3]))
        #expect(s2 == 200)
        let cached = ((j2["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? 0
        #expect(cached > 0, "\(j2)")
        #expect(((j2["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
                == (choice["message"] as? [String: Any])?["content"] as? String)

        // logit_bias +100 on one token makes it the answer; penalties are taken.
        let forced = try #require(try tokenizer.encode(" blue", addBOS: false).first)
        let (s3, j3, t3) = try await send(with(["logit_bias": [String(forced): 100], "max_tokens": 3]))
        #expect(s3 == 200, "\(t3)")
        let forcedText = ((j3["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
        #expect(forcedText.trimmingCharacters(in: .whitespaces).hasPrefix(tokenizer.decode([forced]).trimmingCharacters(in: .whitespaces)), "\(t3)")
        let (s4, _, t4) = try await send(with(["presence_penalty": 1.5, "frequency_penalty": 0.5, "user": "user-42"]))
        #expect(s4 == 200, "\(t4)")

        // Completions logprobs: parallel arrays.
        let (s5, j5, t5) = try await send(["model": "smollm2-135m", "prompt": "The sky is", "max_tokens": 5, "temperature": 0, "logprobs": 2],
                                          path: "/completions")
        #expect(s5 == 200, "\(t5)")
        let clp = ((j5["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any]) ?? [:]
        #expect((clp["tokens"] as? [String])?.count == (clp["token_logprobs"] as? [Double])?.count)
        #expect((clp["top_logprobs"] as? [[String: Double]])?.allSatisfy { $0.count <= 2 } == true && (clp["text_offset"] as? [Int])?.first == 0)

        // Streamed: logprobs ride on the chunks that carry the text.
        let (s6, _, t6) = try await send(with(["logprobs": true, "stream": true, "stream_options": ["include_usage": true]]))
        #expect(s6 == 200)
        let chunks = t6.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8))) as? [String: Any]
        }
        let streamedEntries = chunks.flatMap { c in
            ((c["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any])?["content"] as? [[String: Any]] ?? []
        }
        let streamedUsage = chunks.last?["usage"] as? [String: Any] ?? [:]
        #expect(streamedEntries.count == streamedUsage["completion_tokens"] as? Int, "\(t6.prefix(2_000))")

        // n choices: each served (and receipted) on its own, seeds seed + i; streamed with their indexes.
        var r = HTTPClientRequest(url: info.baseURL + "/chat/completions")
        r.method = .POST
        r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
        r.headers.add(name: "content-type", value: "application/json")
        r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: with(["n": 3, "temperature": 1.0, "seed": 11, "max_tokens": 6]))))
        let nResp = try await HTTPClient.shared.execute(r, timeout: .seconds(300))
        let nJSON = (try? JSONSerialization.jsonObject(with: Data(buffer: try await nResp.body.collect(upTo: 1 << 22)))) as? [String: Any] ?? [:]
        let nChoices = nJSON["choices"] as? [[String: Any]] ?? []
        #expect(nResp.status == .ok && nChoices.map { $0["index"] as? Int } == [0, 1, 2], "\(nJSON)")
        #expect(nResp.headers.first(name: "x-plexus-choices")?.split(separator: ",").count == 3)
        let nUsage = nJSON["usage"] as? [String: Any] ?? [:]
        #expect(nUsage["completion_tokens"] as? Int == nChoices.count * 6 || (nUsage["completion_tokens"] as? Int ?? 0) <= 18)
        let (s7, _, t7) = try await send(with(["n": 2, "stream": true, "max_tokens": 4]))
        let indexes = Set(t7.components(separatedBy: "\n\n").compactMap { line -> Int? in
            guard line.hasPrefix("data: {"), let j = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any] else { return nil }
            return (j["choices"] as? [[String: Any]])?.first?["index"] as? Int
        })
        #expect(s7 == 200 && indexes == [0, 1], "\(t7.prefix(1_000))")

        // Structured output: a JSON object, and a schema's value.
        let (s8, j8, t8) = try await send(with(["response_format": ["type": "json_object"], "max_tokens": 200]))
        let objectText = ((j8["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
        #expect(s8 == 200 && ((try? JSONSerialization.jsonObject(with: Data(objectText.utf8))) as? [String: Any]) != nil, "\(t8)")
        let schema: [String: Any] = ["type": "object", "properties": ["colour": ["enum": ["red", "green", "blue"]], "hex": ["type": "string", "maxLength": 8]],
                                     "required": ["colour", "hex"], "additionalProperties": false]
        let (s9, j9, t9) = try await send(with(["response_format": ["type": "json_schema", "json_schema": ["name": "c", "strict": true, "schema": schema]],
                                                "max_tokens": 100]))
        let schemaText = ((j9["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
        let value = (try? JSONSerialization.jsonObject(with: Data(schemaText.utf8))) as? [String: Any] ?? [:]
        #expect(s9 == 200 && ["red", "green", "blue"].contains(value["colour"] as? String ?? "") && value["hex"] is String && value.count == 2, "\(t9)")

        // Refused, never ignored.
        for (extra, code) in [(["tools": [["type": "function", "function": ["name": "f"]]]], "unsupported_parameter"),
                              (["n": 9], "invalid_value"), (["top_logprobs": 2], "invalid_value"),
                              (["response_format": ["type": "json_schema", "json_schema": ["name": "x", "schema": ["type": "array"]]]], "unsupported_parameter"),
                              (["response_format": ["type": "json_schema"]], "invalid_value"),
                              (["logprobs": true, "top_logprobs": 21], "invalid_value"), (["presence_penalty": 3], "invalid_value"),
                              (["logit_bias": ["x": 1]], "invalid_value"), (["logit_bias": ["5": 101]], "invalid_value"),
                              (["logit_bias": ["999999": 1]], "malformed")] as [([String: Any], String)] {
            let (s, j, t) = try await send(with(extra))
            #expect(s == 400 && (j["error"] as? [String: Any])?["code"] as? String == code, "\(extra): \(t)")
        }
    }
}
