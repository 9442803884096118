import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusNode
import PlexusVerifier
import PlexusWire

/// Detection and false positives: requests served by an honest node and by each drill,
/// made into transcripts and receipts exactly as a node and a gateway make them, then
/// checked by re-execution, the node and the verifier on different kernel paths.
struct DetectBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect", abstract: "Verify requests served honestly and by every adversary drill; count what is caught.")

    @Option(name: .long, help: "Model name or .gguf path.") var model: String = "smollm2-135m"
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Option(name: .long, help: "Requests per adversary mode.") var requests: Int = 100
    @Option(name: .long, help: "Honest requests.") var honest: Int = 1_000
    @Option(name: .long, help: "Most output tokens per request (requests vary below it).") var maxTokens: Int = 16
    @Option(name: .long, help: "Modes, comma-separated (default: all).") var modes: String?
    @Option(name: .long, help: "Threads.") var threads: Int = 2
    @Option(name: .long, help: "Kernel paths node:verifier, comma-separated (portable, avx2, vnni; default: every pair of different paths the processor has).")
    var paths: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Row: Codable {
        var mode: String
        var requests: Int
        var failed: Int
        var tokenMismatch: Int
        var commitmentMismatch: Int
        var bindingProblems: Int
        /// Drill answers that came out bit for bit as the honest node's (tokens and
        /// commitment): no deviation, nothing to catch (a wrong seed can draw the same tokens).
        var identical: Int
        /// Honest answers continued by a second node after the first failed mid-stream
        /// (only the second node's receipt, as a gateway records it).
        var continued: Int
        /// Kernel paths (node → verifier) used, with how many requests each.
        var kernelPairs: [String: Int]

        enum CodingKeys: String, CodingKey {
            case mode, requests, failed, tokenMismatch = "token_mismatch", commitmentMismatch = "commitment_mismatch"
            case bindingProblems = "binding_problems", identical, continued, kernelPairs = "kernel_pairs"
        }
    }

    struct Result: Codable {
        var benchmark = "detect"
        var model: String
        var rows: [Row]
        /// Every drill request that deviated failed, and no honest one did.
        var ok: Bool
    }

    func validate() throws {
        guard (1...100_000).contains(requests), (0...1_000_000).contains(honest), (1...512).contains(maxTokens) else {
            throw ValidationError("--requests 1...100000, --honest 0...1000000, --max-tokens 1...512")
        }
        if let modes { for m in modes.split(separator: ",") where m != "honest" && AdversaryMode(rawValue: String(m)) == nil {
            throw ValidationError("unknown mode '\(m)'")
        } }
    }

    /// Request `i`: greedy and seeded sampling alternate, with the other parameters rotating.
    static func request(_ i: Int, maxTokens: Int, sampled: Bool? = nil) -> GenerateRequest {
        let sample = sampled ?? (i % 2 == 1)
        var r = GenerateRequest(model: "m", messages: [ChatMessage(role: "user", content: ["Say hello.", "What is 2+2?", "Name a colour.", "Write a word."][i % 4] + " #\(i)")],
                                maxTokens: 1 + (i * 7) % maxTokens, temperature: sample ? [0.7, 1.0, 1.3][i % 3] : 0, seed: UInt64(i) &* 2_654_435_761)
        if sample {
            switch i % 5 {
            case 0: r.topP = 0.9
            case 1: r.topK = 40
            case 2: r.minP = 0.05
            case 3: r.repetitionPenalty = 1.1
            default: r.stop = ["."]
            }
        }
        return r
    }

    func run() async throws {
        let path = try ModelStore(directory: store).resolve(model)
        let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
        let checker = try TranscriptCheck(model: try LlamaModel(path: path), modelHash: hash, threads: threads)
        let reference = try EngineBackend(path: path, weightsHash: hash, threads: threads)
        let chosen: [String] = modes.map { $0.split(separator: ",").map(String.init) } ?? ["honest"] + AdversaryMode.allCases.map(\.rawValue)
        let top = KernelPath.processorLevel
        // (node, verifier) kernel levels, always different where the processor has more than one path.
        let names = ["portable", "avx2", "vnni"]
        var pairs: [(Int32, Int32)] = top == 0 ? [(0, 0)] : top == 1 ? [(0, 1), (1, 0)] : [(0, 2), (2, 0), (1, 2), (2, 1), (0, 1), (1, 0)]
        if let paths {
            pairs = try paths.split(separator: ",").map { p in
                let two = p.split(separator: ":").compactMap { names.firstIndex(of: String($0)).map(Int32.init) }
                guard two.count == 2 else { throw ValidationError("--paths takes node:verifier pairs such as avx2:portable") }
                return (two[0], two[1])
            }
        }
        let key = KeyPair.deterministic("drill-node"), chainId = "plexus-test"
        var rows: [Row] = []
        for mode in chosen {
            let adversary = AdversaryMode(rawValue: mode)
            let engine: EngineBackend
            var derived: String?
            if let adversary, adversary.changesWeights {
                let out = NSTemporaryDirectory() + "plexus-detect-\(mode)-\(getpid()).gguf"
                try adversary.deriveWeights(from: path, to: out)
                derived = out
            }
            defer { if let derived { try? FileManager.default.removeItem(atPath: derived) } }
            engine = try EngineBackend(path: derived ?? path, weightsHash: hash, threads: threads)
            let backend: any GenerationBackend = adversary.map { AdversaryBackend(inner: engine, mode: $0) } ?? engine
            let n = adversary == nil ? honest : requests
            var row = Row(mode: mode, requests: n, failed: 0, tokenMismatch: 0, commitmentMismatch: 0, bindingProblems: 0, identical: 0, continued: 0, kernelPairs: [:])
            for i in 0..<n {
                // A different seed changes nothing a greedy request does: that drill samples.
                var r = Self.request(i, maxTokens: maxTokens, sampled: adversary == .wrongSeed ? true : nil)
                if adversary == .wrongSeed { r.maxTokens = max(r.maxTokens, min(8, maxTokens)) }
                let (nodePath, verifierPath) = pairs[i % pairs.count]
                KernelPath.level = nodePath
                var result = try backend.generate(r) { _, _ in }
                if adversary != nil {
                    let honest = try reference.generate(r) { _, _ in }
                    if honest.tokens == result.tokens && honest.commitment == result.commitment && honest.finish == result.finish { row.identical += 1 }
                }
                var tokens = result.tokens, first = 0, requestHash = Hash256.of(r.json)
                if adversary == nil, i % 6 == 5, result.tokens.count >= 4 {
                    // Failover: the first node died after half its tokens; a second node, on another kernel path, continues.
                    first = result.tokens.count / 2
                    let partial = Transcript(modelHash: hash, request: r, outputTokens: Array(result.tokens[..<first]), finishReason: "", chainId: chainId, receipts: [])
                    let continuation = partial.request(continuingAt: first)
                    KernelPath.level = pairs[(i + 1) % pairs.count].0
                    result = try backend.generate(continuation) { _, _ in }
                    tokens = Array(tokens[..<first]) + result.tokens
                    requestHash = Hash256.of(continuation.json)
                    row.continued += 1
                }
                var receipt = Receipt(requestId: Hash256.of(Array("\(mode) \(i)".utf8)), requestHash: requestHash,
                                      requestor: key.address, node: key.address, modelHash: hash, inputTokens: UInt64(result.promptTokens),
                                      outputTokens: UInt64(result.tokens.count), firstOutputToken: UInt64(first), priceIn: Amount(units: 1),
                                      priceOut: Amount(units: 1), outputHash: outputHash(result.tokens), timeMillis: 1, commitment: result.commitment)
                receipt.signAsNode(key, chainId: chainId)
                let t = Transcript(modelHash: hash, request: r, outputTokens: tokens, finishReason: result.finish, chainId: chainId, receipts: [receipt])
                KernelPath.level = verifierPath
                let report = try checker.check(t)
                KernelPath.level = 2
                row.kernelPairs["\(names[Int(min(nodePath, top))])→\(names[Int(min(verifierPath, top))])", default: 0] += 1
                if !report.ok { row.failed += 1 }
                if report.firstMismatch != nil { row.tokenMismatch += 1 }
                if !report.commitmentOk { row.commitmentMismatch += 1 }
                if !report.bindingOk { row.bindingProblems += 1 }
            }
            rows.append(row)
            // Progress (on stderr when the answer is JSON).
            let line = "\(mode): \(row.failed) of \(n) failed verification (tokens \(row.tokenMismatch), commitment \(row.commitmentMismatch); identical to honest \(row.identical))"
            if json { FileHandle.standardError.write(Data((line + "\n").utf8)) } else { print(line) }
        }
        let ok = rows.allSatisfy { $0.mode == "honest" ? $0.failed == 0 : $0.failed == $0.requests - $0.identical }
        if json { try printJSON(Result(model: model, rows: rows, ok: ok)) }
        if !ok { throw ExitCode(1) }
    }
}
