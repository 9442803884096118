import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusWire

/// What checking a transcript found. `ok` only when the binding holds and the engine
/// reproduces every token, the finish and every share's commitment.
public struct TranscriptReport: Sendable, Codable {
    public var ok: Bool
    /// The receipts' signatures, and the transcript hashing to their request and output hashes.
    public var bindingOk: Bool
    /// Why the binding fails (empty when it holds).
    public var bindingProblems: [String]
    public var firstMismatch: ReplayReport.Mismatch?
    /// The finish the node reported is the engine's.
    public var finishOk: Bool
    /// Every share's commitment recomputed (nil where a share's receipt makes no claim).
    public var commitmentOk: Bool
    /// The engine's commitment over the whole run, and its chunk count.
    public var commitmentRoot: Hash256
    public var chunks: Int
    public var promptTokens: Int
    public var outputTokens: Int
    /// For each share whose commitment the engine reproduced: its last chunk's hash and
    /// Merkle path, the evidence a passing verdict carries (`ChunkEvidence`).
    public var evidence: [ChunkEvidence] = []
    /// The first share found wrong (where the first mismatching token falls, else the
    /// first whose commitment does not hold); nil when all is well.
    public var failingShare: Int?

    enum CodingKeys: String, CodingKey {
        case ok, bindingOk = "binding_ok", bindingProblems = "binding_problems", firstMismatch = "first_mismatch"
        case finishOk = "finish_ok", commitmentOk = "commitment_ok", commitmentRoot = "commitment_root", chunks
        case promptTokens = "prompt_tokens", outputTokens = "output_tokens", evidence, failingShare = "failing_share"
    }

    /// The report on a transcript the engine could not replay at all: a failure.
    public static func unreplayable(_ t: Transcript, problem: String) -> TranscriptReport {
        var r = TranscriptReport(ok: false, bindingOk: false, bindingProblems: [problem], firstMismatch: nil, finishOk: false, commitmentOk: false,
                                 commitmentRoot: .zero, chunks: 0, promptTokens: 0, outputTokens: t.outputTokens.count)
        r.failingShare = max(0, t.receipts.count - 1)
        return r
    }
}

/// Checks a transcript against a model: first the binding (receipts signed, hashing to
/// the transcript's request and output), then one re-execution (`Generator.replay`).
public struct TranscriptCheck: Sendable {
    public let model: LlamaModel
    public let modelHash: Hash256
    public let template: ChatTemplate?
    public let threads: Int

    public init(model: LlamaModel, modelHash: Hash256, threads: Int) throws {
        self.model = model
        self.modelHash = modelHash
        self.threads = threads
        template = try model.file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
    }

    public func check(_ t: Transcript) throws -> TranscriptReport {
        var problems: [String] = []
        if t.modelHash != modelHash { problems.append("the transcript names model \(t.modelHash.hex.prefix(16)), not this one (\(modelHash.hex.prefix(16)))") }
        if !t.request.continuation.isEmpty { problems.append("the first share's request carries a continuation") }
        let prompt = try t.request.promptTokens(model: model, template: template)
        if let claimed = t.promptTokens, claimed != prompt { problems.append("the prompt tokens are not the request's") }
        problems += bindingProblems(t)

        // Shares that sampled (whole-model nodes, and the last shard of a pipeline) cover the
        // output one after another; a pipeline's other shards relay hidden states.
        let sampling = t.receipts.indices.filter { t.receipts[$0].samples }
        // Each sampling share's node ran the prompt and the output up to its share's end (the
        // last token only when its logits ended the sequence): the commitment its receipt must carry.
        let ends = sampling.map { Int(clamping: t.receipts[$0].firstOutputToken &+ t.receipts[$0].outputTokens) }
        let replay = try Generator(model: model, threads: threads).replay(ReplayRequest(
            prompt: prompt, output: t.outputTokens, maxTokens: t.request.maxTokens, sampling: t.request.sampling, stop: t.request.stop,
            commitmentsAt: ends.flatMap { [prompt.count + max(0, $0 - 1), prompt.count + $0] }, responseFormat: t.request.responseFormat))
        let finishOk = replay.ok && (t.finishReason == "length" ? replay.finish == .length : t.finishReason == "stop" && replay.finish != .length)
        var commitmentOk = replay.ok
        var evidence: [Int: ChunkEvidence] = [:]
        var badCommitment: Int?
        for (k, i) in sampling.enumerated() {
            let r = t.receipts[i]
            guard let claimed = r.commitment else {
                problems.append("receipt \(i) makes no commitment (format 1)")
                commitmentOk = false
                continue
            }
            guard claimed.exact else {
                problems.append("receipt \(i) comes from a backend that cannot be re-executed bit for bit")
                commitmentOk = false
                continue
            }
            let endedBySequence = k == sampling.count - 1 && replay.finish == .endOfSequence
            guard let own = replay.commitmentsAt[2 * k + (endedBySequence ? 1 : 0)],
                  own.root == claimed.root, UInt32(own.chunks.count) == claimed.chunks else {
                commitmentOk = false
                if badCommitment == nil { badCommitment = i }
                continue
            }
            if let last = own.chunks.last { evidence[i] = ChunkEvidence(chunk: last, path: MerkleRoot.path(own.chunks, index: own.chunks.count - 1)) }
        }
        // The relaying shards: the states they received and sent, recomputed at their layers'
        // bounds. The first shard (in layer order) whose sent states differ while what it
        // received holds is the one that went wrong.
        var faultyRelay: Int?
        let relays = t.receipts.indices.filter { !t.receipts[$0].samples }
        if !relays.isEmpty {
            let sequence = prompt + t.outputTokens
            let rows = relays.map { Int(clamping: t.receipts[$0].shard!.positions) }.max() ?? 0
            let states = try Self.boundaryStates(model: model, tokens: Array(sequence.prefix(min(rows, sequence.count))), threads: threads,
                                                 at: relays.flatMap { [Int(t.receipts[$0].shard!.layers.start), Int(t.receipts[$0].shard!.layers.end)] })
            let dim = model.config.embedding
            func commitment(_ bound: Int, rows n: Int) -> Commitment? {
                guard let h = states[bound], n * dim <= h.count else { return nil }
                var b = CommitmentBuilder()
                b.add(rows: h, width: dim, count: n)
                return b.finish()
            }
            for i in relays.sorted(by: { t.receipts[$0].shard!.layers.start < t.receipts[$1].shard!.layers.start }) {
                let r = t.receipts[i], work = r.shard!, n = Int(clamping: work.positions)
                let sent = commitment(Int(work.layers.end), rows: n)
                let receivedOk = work.layers.isFirst ? work.received == .zero : commitment(Int(work.layers.start), rows: n)?.root == work.received
                guard let sent, sent.root == work.sent, r.commitment?.root == work.sent, r.commitment?.chunks == UInt32(sent.chunks.count),
                      r.commitment?.exact == true else {
                    commitmentOk = false
                    if faultyRelay == nil && receivedOk { faultyRelay = i }
                    continue
                }
                if !receivedOk { commitmentOk = false }
                if let last = sent.chunks.last { evidence[i] = ChunkEvidence(chunk: last, path: MerkleRoot.path(sent.chunks, index: sent.chunks.count - 1)) }
            }
        }
        var report = TranscriptReport(ok: problems.isEmpty && replay.ok && finishOk && commitmentOk, bindingOk: problems.isEmpty,
                                bindingProblems: problems, firstMismatch: replay.firstMismatch, finishOk: finishOk, commitmentOk: commitmentOk,
                                commitmentRoot: replay.commitment.root, chunks: replay.commitment.chunks.count,
                                promptTokens: prompt.count, outputTokens: t.outputTokens.count)
        report.evidence = t.receipts.indices.compactMap { evidence[$0] }
        if !report.ok {
            let position = replay.firstMismatch?.position
            report.failingShare = faultyRelay
                ?? position.flatMap { p in sampling.last { Int(clamping: t.receipts[$0].firstOutputToken) <= p } } ?? badCommitment ?? 0
        }
        return report
    }

    /// The hidden states entering each layer of `bounds` (those a pipeline's shards pass on at
    /// those layers), for every position of `tokens`, run as a pipeline split there would.
    static func boundaryStates(model: LlamaModel, tokens: [TokenID], threads: Int, at bounds: [Int]) throws -> [Int: [Float]] {
        let L = model.config.layers
        let cuts = Array(Set(bounds.filter { $0 > 0 && $0 < L })).sorted()
        guard !cuts.isEmpty, !tokens.isEmpty else { return [:] }
        let edges = [0] + cuts + [L]
        let ranges = (0..<(edges.count - 1)).map { edges[$0]..<edges[$0 + 1] }
        let pass = ForwardPass(model: model, rowLimit: 32, maxContext: tokens.count + 1, threads: threads)
        let caches = try ranges.map { _ in try KVCache(config: model.config, capacity: tokens.count + 1) }
        var out: [Int: [Float]] = [:]
        var at = 0
        while at < tokens.count {
            let chunk = Array(tokens[at..<min(tokens.count, at + 32)])
            var hidden: [Float]?
            for (k, range) in ranges.enumerated() where range.upperBound < L {
                let segment = hidden.map { ForwardPass.Segment(cache: caches[k], hidden: $0, rows: chunk.count, wantsLogits: false) }
                    ?? ForwardPass.Segment(cache: caches[k], tokens: chunk, wantsLogits: false)
                hidden = try pass.step([segment], layers: range)[0].hidden
                out[range.upperBound, default: []] += hidden ?? []
            }
            at += chunk.count
        }
        return out
    }

    /// Every receipt signed by its node, for this request and model, over the share of the
    /// output it claims (its request hash that of the request continued where it starts);
    /// the last share ends the output.
    func bindingProblems(_ t: Transcript) -> [String] {
        var problems: [String] = []
        guard !t.receipts.isEmpty else { return ["the transcript has no receipt"] }
        let id = t.receipts[0].requestId
        var end = 0
        for (i, r) in t.receipts.enumerated() {
            let first = Int(clamping: r.firstOutputToken), count = Int(clamping: r.outputTokens)
            if r.requestId != id { problems.append("receipt \(i) is for another request") }
            if r.modelHash != t.modelHash { problems.append("receipt \(i) names another model") }
            if !r.node.verifies(r.nodeSignature, over: r.nodeSigningBytes(chainId: t.chainId)) {
                problems.append("receipt \(i): the node signature does not verify")
            }
            guard r.samples else {
                // A relaying shard: sent the request as it began (no output of its own to bind).
                guard first <= t.outputTokens.count, let span = r.shard?.layers else {
                    problems.append("receipt \(i) claims a start past the output")
                    continue
                }
                if Hash256.of(ShardOpenRequest(request: t.request(continuingAt: first), layers: span).body) != r.requestHash {
                    problems.append("receipt \(i): the request is not what the shard was sent")
                }
                continue
            }
            guard first >= end, count <= t.outputTokens.count, first <= t.outputTokens.count - count else {
                problems.append("receipt \(i) claims tokens \(first)..<\(first &+ count) of \(t.outputTokens.count)")
                continue
            }
            end = first + count
            if outputHash(Array(t.outputTokens[first..<end])) != r.outputHash { problems.append("receipt \(i): the output is not what the node signed") }
            let sent = r.shard.map { ShardOpenRequest(request: t.request(continuingAt: first), layers: $0.layers).body } ?? t.request(continuingAt: first).json
            if Hash256.of(sent) != r.requestHash { problems.append("receipt \(i): the request is not what the node was sent") }
        }
        guard let last = t.receipts.last(where: \.samples) else { return problems + ["no receipt sampled the output"] }
        let (lastEnd, overflow) = last.firstOutputToken.addingReportingOverflow(last.outputTokens)
        if overflow || lastEnd != UInt64(t.outputTokens.count) {
            problems.append("the last receipt does not end the output")
        }
        return problems
    }
}
