import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusNode
import PlexusTestKit
import PlexusVerifier
import PlexusWire
import Testing

/// Transcripts made as a node makes its answers, checked by re-execution; every
/// single change to a token, the prompt, a sampling parameter or the seed is caught.
@Suite struct TranscriptCheckTests {
    static let fixture: (path: String, hash: Hash256) = {
        let dir = NSTemporaryDirectory() + "plexus-transcripts-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "plexus-transcripts-\(getpid())") }
        let path = (try? TinyModel.write(to: dir + "/tiny.gguf")) ?? ""
        return (path, (try? Hash256(hex: ModelStore.sha256(ofFile: path))) ?? .zero)
    }()
    static let node = KeyPair.deterministic("transcript-node")
    static let chain = "plexus-test"

    /// What a node answers `r` with: its tokens, finish and signed receipt (as `NodeServer` makes them).
    static func serve(_ r: GenerateRequest, threads: Int = 1) throws -> (tokens: [TokenID], finish: String, receipt: Receipt) {
        let backend = try EngineBackend(path: fixture.path, weightsHash: fixture.hash, threads: threads)
        var tokens: [TokenID] = []
        let result = try backend.generate(r) { t, _ in if let t { tokens.append(t) } }
        var receipt = Receipt(requestId: Hash256.of([9]), requestHash: Hash256.of(r.json), requestor: KeyPair.deterministic("requestor").address,
                              node: node.address, modelHash: fixture.hash, inputTokens: UInt64(result.promptTokens),
                              outputTokens: UInt64(result.tokens.count), firstOutputToken: UInt64(r.continuation.count),
                              priceIn: Amount(units: 1), priceOut: Amount(units: 1), outputHash: outputHash(result.tokens), timeMillis: 1,
                              commitment: result.commitment)
        receipt.signAsNode(node, chainId: chain)
        #expect(tokens == result.tokens)
        return (result.tokens, result.finish, receipt)
    }

    static let request = GenerateRequest(model: "tiny", messages: [.init(role: "user", content: "hello there")], maxTokens: 24,
                                         temperature: 0.9, topP: 0.9, seed: 42, stop: [])

    static func transcript(_ r: GenerateRequest = request) throws -> Transcript {
        let (tokens, finish, receipt) = try serve(r)
        return Transcript(modelHash: fixture.hash, request: r, outputTokens: tokens, finishReason: finish, chainId: chain, receipts: [receipt])
    }

    static func check(_ t: Transcript, threads: Int = 2) throws -> TranscriptReport {
        let model = try LlamaModel(path: fixture.path)
        return try TranscriptCheck(model: model, modelHash: fixture.hash, threads: threads).check(t)
    }

    @Test func anUntouchedTranscriptPasses() throws {
        for r in [Self.request, GenerateRequest(model: "tiny", prompt: "the hello", maxTokens: 30), {
            var s = Self.request
            s.stop = ["e"]
            return s
        }()] {
            let t = try Self.transcript(r)
            let report = try Self.check(t)
            #expect(report.ok && report.bindingOk && report.finishOk && report.firstMismatch == nil, "\(report.bindingProblems)")
            #expect(report.outputTokens == t.outputTokens.count && report.chunks >= 1)
        }
    }

    @Test func aContinuedAnswerPassesWithTheSecondNodesReceipt() throws {
        let whole = try Self.transcript()
        try #require(whole.outputTokens.count > 6)
        let k = 5
        var rest = Self.request
        rest.continuation = Array(whole.outputTokens[..<k])
        let second = try Self.serve(rest, threads: 2)
        #expect(second.tokens == Array(whole.outputTokens[k...]))
        var t = whole
        t.receipts = [second.receipt]  // the first node died before signing
        #expect(try Self.check(t).ok)
    }

    @Test func everySingleChangeFails() throws {
        let t = try Self.transcript()
        var forged: [(String, Transcript)] = []
        for k in t.outputTokens.indices {
            var f = t
            f.outputTokens[k] = f.outputTokens[k] == 100 ? 101 : 100
            forged.append(("output token \(k)", f))
        }
        var prompt = t
        let real = try Self.check(t).promptTokens
        prompt.promptTokens = Array(repeating: 5, count: real)
        forged.append(("prompt tokens", prompt))
        for (name, edit) in [("temperature", { (r: inout GenerateRequest) in r.temperature = 1.0 }),
                             ("top_p", { $0.topP = 0.95 }), ("seed", { $0.seed = 43 }), ("max_tokens", { $0.maxTokens = 23 }),
                             ("stop", { $0.stop = ["zz"] }), ("message", { $0.messages = [.init(role: "user", content: "hello therE")] })] {
            var f = t
            edit(&f.request)
            forged.append((name, f))
        }
        var finish = t
        finish.finishReason = t.finishReason == "length" ? "stop" : "length"
        forged.append(("finish", finish))
        var other = t
        other.chainId = "another-chain"
        forged.append(("chain", other))
        for (name, f) in forged {
            let report = try Self.check(f)
            #expect(!report.ok, "a changed \(name) passed")
        }
    }

    @Test func theReceiptsCommitmentIsRecomputed() throws {
        let t = try Self.transcript()
        #expect(t.receipts[0].commitment?.exact == true && (t.receipts[0].commitment?.chunks ?? 0) >= 1)
        #expect(try Self.check(t).commitmentOk)
        // A root the run does not make, re-signed by the node so that only the commitment is wrong.
        for edit in [{ (c: inout ReceiptCommitment) in c.root = Hash256.of([1]) }, { $0.chunks += 1 }, { $0.exact = false }] {
            var f = t
            edit(&f.receipts[0].commitment!)
            f.receipts[0].signAsNode(Self.node, chainId: Self.chain)
            let report = try Self.check(f)
            #expect(!report.ok && !report.commitmentOk)
        }
        // A format-1 receipt (no commitment) cannot be checked for one.
        var old = t
        old.receipts[0].commitment = nil
        old.receipts[0].signAsNode(Self.node, chainId: Self.chain)
        #expect(try !Self.check(old).ok)
        // A continued answer: the second node's commitment covers its own run.
        let k = 4
        var rest = Self.request
        rest.continuation = Array(t.outputTokens[..<k])
        var continued = t
        continued.receipts = [try Self.serve(rest, threads: 2).receipt]
        #expect(try Self.check(continued).commitmentOk)
    }

    @Test func hostileTranscriptsAreRefusedClearly() throws {
        #expect(throws: PlexusError.self) { try Transcript.decode(Array("{\"model_hash\": 5}".utf8)) }
        #expect(throws: PlexusError.self) { try Transcript.decode([UInt8](repeating: 32, count: Transcript.maxBytes + 1)) }
        var t = try Self.transcript()
        t.receipts[0].firstOutputToken = UInt64.max
        #expect(try !Self.check(t).bindingOk)
        t.receipts = []
        #expect(try !Self.check(t).bindingOk)
    }
}
