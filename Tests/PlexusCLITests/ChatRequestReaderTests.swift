import Foundation
import PlexusCore
@testable import PlexusGateway
import PlexusHTTP
import PlexusNode
import PlexusWire
import PlexusTestKit
import Testing

/// The gateway reads common chat requests with its own JSON reader and leaves
/// everything else to `JSONDecoder`; both must read the same request.
@Suite struct ChatRequestReaderTests {
    static func both(_ json: String) -> (fast: ChatRequest?, generic: ChatRequest?) {
        let bytes = Array(json.utf8)
        let fast = JSONTree.parse(bytes).flatMap { ChatRequest(tree: $0) }
        let generic = try? JSONDecoder().decode(ChatRequest.self, from: Data(bytes))
        return (fast, generic)
    }

    @Test func readsWhatTheGenericDecoderReads() throws {
        var rng = SeededGenerator(seed: 21)
        let texts = ["hi", "a \"quoted\" \\ word", "line\nbreak", "é 👍", ""]
        let optional: [(String, [String])] = [
            ("max_tokens", ["16", "1", "null"]), ("max_completion_tokens", ["8", "null"]), ("temperature", ["0", "0.7", "2", "1e-3", "null"]),
            ("top_p", ["1", "0.5", "null"]), ("seed", ["42", "-7", "9223372036854775807", "null"]), ("stop", ["\"x\"", "[\"a\",\"b\"]", "[]", "null"]),
            ("stream", ["true", "false", "null"]), ("stream_options", ["{\"include_usage\":true}", "{}", "{\"include_usage\":null}", "null"]),
            ("n", ["1", "2", "null"]), ("user", ["\"someone\"", "null"]), ("logprobs", ["false", "true", "null"]),
            ("top_logprobs", ["0", "5", "null"]), ("presence_penalty", ["0.5", "-2", "null"]), ("frequency_penalty", ["1", "null"]),
        ]
        for i in 0..<400 {
            func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
            var fields = ["\"model\":\(FastJSON.quote("m-" + pick(texts)))"]
            if i % 3 == 0 {
                fields.append("\"prompt\":\(FastJSON.quote(pick(texts)))")
            } else {
                let messages = (0..<Int(rng.next() % 3 + 1)).map { _ in
                    "{\"role\":\(FastJSON.quote(pick(["user", "system", "assistant"]))),\"content\":\(rng.next() % 9 == 0 ? "null" : FastJSON.quote(pick(texts)))}"
                }
                fields.append("\"messages\":[\(messages.joined(separator: ","))]")
            }
            for (key, values) in optional where rng.next() % 2 == 0 { fields.append("\"\(key)\":\(pick(values))") }
            fields.shuffle(using: &rng)
            let json = "{" + fields.joined(separator: i % 2 == 0 ? "," : " ,\n ") + "}"
            let (fast, generic) = Self.both(json)
            let g = try #require(generic, "\(json)")
            let f = try #require(fast, "\(json)")
            #expect(String(describing: f) == String(describing: g), "\(json)")
        }
    }

    @Test func leavesUnusualShapesToTheGenericDecoder() {
        // Content parts, the routing object, prompts as lists, odd types: the reader declines; the generic decoder decides.
        for json in [#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
                     #"{"model":"m","prompt":"p","plexus":{"sort":"price"}}"#,
                     #"{"model":"m","prompt":["p"]}"#,
                     #"{"model":"m","prompt":"p","logit_bias":{"5":1}}"#,
                     #"{"model":"m","prompt":"p","tools":[]}"#,
                     #"{"model":"m","prompt":"p","logprobs":3}"#,
                     #"{"model":"m","prompt":"p","max_tokens":16.0}"#,
                     #"{"model":"m","prompt":"p","max_tokens":"16"}"#,
                     #"{"model":"m","prompt":"p","stream":"yes"}"#,
                     #"{"model":"m","prompt":"p","seed":1e3}"#,
                     #"{"model":"m","messages":[{"content":"no role"}]}"#,
                     #"{"model":"m","messages":[{"role":"user"}]}"#,
                     #"{"model":7,"prompt":"p"}"#,
                     #"{"prompt":"p"}"#,
                     #"["model"]"#] {
            #expect(Self.both(json).fast == nil, "\(json)")
        }
        #expect(Self.both(#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#).generic?.messages?.first?.content == "hi")
        #expect(Self.both(#"{"model":"m","prompt":"p","plexus":{"sort":"price"}}"#).generic?.plexus?.sort == "price")
    }
}
