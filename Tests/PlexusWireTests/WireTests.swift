import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger
@testable import PlexusWire
import PlexusTestKit
import Testing

@Suite struct WireTests {
    /// Found by `scripts/fuzz.sh generate-request`: a body with repeated keys ("seed" 6 then 5)
    /// read one way by the fast reader and another by `JSONDecoder`. The fast reader now
    /// refuses repeated keys, so every reader of a body gives the same request.
    @Test func repeatedKeysMeanTheSameRequestToEveryReader() throws {
        let body = Array(#"{"continuation":[],"maxTokens":16,"messages":[{"content":"hi","role":"user"}],"model":"m","seed":6,"stop":[],"temperature":0.7,"topP":1,"seed":5}"#.utf8)
        #expect(JSONTree.parse(body) == nil)
        #expect(try GenerateRequest.decode(body) == (try JSONDecoder().decode(GenerateRequest.self, from: Data(body))))
        #expect(JSONTree.parse(Array(#"{"a":1,"b":{"a":2}}"#.utf8)) != nil)
        // Past 16 keys the check is a set: 40,000 keys, the last repeating the first, are refused in linear time.
        let many = "{" + (0..<40_000).map { "\"k\($0)\":0" }.joined(separator: ",") + ",\"k0\":1}"
        let start = Date()
        #expect(JSONTree.parse(Array(many.utf8), maxDepth: 4) == nil)
        #expect(Date().timeIntervalSince(start) < 20)
        #expect(JSONTree.parse(Array((many.dropLast(8) + "}").utf8), maxDepth: 4) != nil)
    }

    /// Found by `scripts/fuzz.sh node-event`: the fast event readers took what JSON refuses
    /// (a token written "02"; a raw control character in the finish reason). They refuse it now,
    /// as `JSONDecoder` does.
    @Test func theFastEventReadersRefuseWhatJSONRefuses() {
        #expect(FastJSON.parseTokenEvent(Array(#"{"type":"token","token":02,"text":"a"}"#.utf8)[...]) == nil)
        #expect(FastJSON.parseTokenEvent(Array(#"{"type":"token","token":0,"text":"a"}"#.utf8)[...])?.0 == 0)
        #expect(FastJSON.parseTokenEvent(Array(#"{"type":"token","token":20,"text":"a"}"#.utf8)[...])?.0 == 20)
        let receipt = Receipt(requestId: Hash256.of([1]), requestHash: Hash256.of([2]), requestor: KeyPair.deterministic("a").address,
                              node: KeyPair.deterministic("b").address, modelHash: Hash256.of([3]), inputTokens: 1, outputTokens: 1,
                              priceIn: Amount(units: 1), priceOut: Amount(units: 1), outputHash: Hash256.of([4]), timeMillis: 1)
        let done = Array(FastJSON.doneEvent(finish: "stop", promptTokens: 12, receipt: receipt).dropFirst(6).dropLast(2))
        #expect(FastJSON.parseDoneEvent(done[...])?.promptTokens == 12)
        var control = done
        control[control.firstIndex(of: UInt8(ascii: "p"))!] = 0x01
        #expect(FastJSON.parseDoneEvent(control[...]) == nil)
        let zero = Array(String(decoding: done, as: UTF8.self).replacingOccurrences(of: "\"promptTokens\":12", with: "\"promptTokens\":012").utf8)
        #expect(FastJSON.parseDoneEvent(zero[...]) == nil)
    }

    @Test func fastTokenEventsRoundTripAnyText() throws {
        var rng = SeededGenerator(seed: 4)
        var samples = ["", "plain", "quote \" and \\ backslash", "new\nline\ttab\r", "\u{0}\u{1}\u{1f}", "emoji 👩🏽‍💻 and é", "/slash/", "\u{7f}"]
        for _ in 0..<500 {
            let n = Int(rng.next() % 12)
            var s = ""
            for _ in 0..<n {
                let pick = rng.next() % 5
                s.unicodeScalars.append(pick == 0 ? Unicode.Scalar(UInt8(rng.next() % 0x80)) :
                                        pick == 1 ? Unicode.Scalar(UInt32(0x1F300 + rng.next() % 200))! :
                                        Unicode.Scalar(UInt32(0x20 + rng.next() % 0x2000)) ?? "x")
            }
            samples.append(s)
        }
        for (i, s) in samples.enumerated() {
            let token = TokenID(i % 3 == 0 ? -1 : i * 977)
            let event = FastJSON.tokenEvent(token, s)
            #expect(event.starts(with: Array("data: ".utf8)) && event.suffix(2) == [10, 10])
            let line = event.dropFirst(6).dropLast(2)
            let parsed = try #require(FastJSON.parseTokenEvent(line), "\(s.debugDescription)")
            #expect(parsed.0 == token && parsed.1 == s)
            // The generic decoder reads the same event.
            let generic = try JSONDecoder().decode(NodeEvent.self, from: Data(line))
            #expect(generic.type == "token" && generic.token == token && generic.text == s)
        }
        // Standard escapes written by other encoders, and malformed input, are handled.
        let other = Array(#"{"type":"token","token":7,"text":"a\/b\u00e9\ud83d\ude00\b\f"}"#.utf8)
        #expect(FastJSON.parseTokenEvent(other[...])?.1 == "a/bé😀\u{8}\u{c}")
        for bad in [#"{"type":"token","token":,"text":"x"}"#, #"{"type":"token","token":1,"text":"x\q"}"#,
                    #"{"type":"token","token":1,"text":"\ud83d"}"#, #"{"type":"token","token":1,"text":"a"b"}"#,
                    #"{"type":"token","token":99999999999,"text":"x"}"#, #"{"type":"done"}"#] {
            #expect(FastJSON.parseTokenEvent(Array(bad.utf8)[...]) == nil, "\(bad)")
        }
    }

    @Test func envelopesRoundTripAndRejectTampering() throws {
        let g = KeyPair.deterministic("gw")
        var e = Envelope(requestId: Hash256.of([1]), requestor: KeyPair.deterministic("r").address, gateway: g.address,
                         node: KeyPair.deterministic("n").address, bodyHash: Hash256.of([2]), expiresAtMillis: 123)
        e.sign(g, chainId: "c")
        let back = try Envelope(hex: e.hex)
        #expect(back == e)
        #expect(back.gateway.verifies(back.signature, over: back.signingBytes(chainId: "c")))
        #expect(!back.gateway.verifies(back.signature, over: back.signingBytes(chainId: "other")))
        #expect(throws: PlexusError.self) { try Envelope(hex: String(e.hex.dropLast(2))) }
        #expect(throws: PlexusError.self) { try Envelope(hex: e.hex + "00") }
        #expect(throws: PlexusError.self) { try Envelope(hex: String(repeating: "ab", count: 600)) }
    }

    /// top_k, min_p and repetition penalty travel only when set: a request without them is
    /// the same body, byte for byte, as before they existed (so its hash is too).
    @Test func extraSamplingTravelsOnlyWhenSet() throws {
        let plain = GenerateRequest(model: "m", prompt: "hi", maxTokens: 4, temperature: 0.5, topP: 0.9, seed: 3, stop: ["x"])
        #expect(String(decoding: plain.json, as: UTF8.self)
                == #"{"continuation":[],"maxTokens":4,"model":"m","prompt":"hi","seed":3,"stop":["x"],"temperature":0.5,"topP":0.9}"#)
        for (k, m, r) in [(Int?(40), Double?(0.05), Double?(1.3)), (nil, 0.1, nil), (7, nil, nil), (nil, nil, 0.8)] {
            var x = plain
            x.topK = k
            x.minP = m
            x.repetitionPenalty = r
            let written = x.json
            #expect(try GenerateRequest.decode(written) == x)
            #expect(try JSONDecoder().decode(GenerateRequest.self, from: Data(written)) == x)
            #expect(GenerateRequest(tree: try #require(JSONTree.parse(written))) == x)
            #expect(x.sampling.topK == (k ?? 0) && x.sampling.minP == (m ?? 0) && x.sampling.repetitionPenalty == (r ?? 1))
        }
    }
}
