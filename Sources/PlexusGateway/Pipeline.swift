import Foundation
import Metrics
import NIOCore
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger
import PlexusWire

/// One attempt over a pipeline of shards, as I/O: opens the request's sequence on a shard per
/// layer span, runs the prompt through them in micro-batches (shard s works on batch b while
/// shard s+1 works on batch b−1), then one token at a time, relaying each shard's hidden states
/// to the next as binary frames, and streams the last shard's pieces. The gateway keeps what
/// entered each shard, so a shard that fails (an error, a broken connection, a malformed or
/// mis-sized frame) is replaced by another of its span, rebuilt by a prefill of exactly those
/// inputs, and the step retried: the output is the bits an uninterrupted pipeline (and one
/// whole-model node) gives. Ends with every serving shard's signed receipt.
struct PipelineCaller: Sendable {
    let nodes: NodeCaller
    let directory: NodeDirectory
    /// Steps go over the shards' frame links where they offer one (`ShardOpened.framePort`).
    let frames: FrameClient
    /// Prompt positions per pipelined prefill batch.
    static let microBatch = 32

    /// A shard failed (its fault): replace it.
    struct ShardFault: Error {
        var message: String
    }

    /// One span of the pipeline: its shards (the one serving, then replacements) and what
    /// entered it so far.
    final class Stage: @unchecked Sendable {
        // Invariant: touched by one task at a time (the stage's own step).
        let span: LayerSpan
        var alternatives: [Candidate]
        var index = 0
        var handle: Hash256?
        var framePort: Int?
        /// The first stage: tokens run; the others: hidden states received, rows × width.
        var tokens: [TokenID] = []
        var states: [Float] = []
        /// Over the states the serving shard sent (from its first position, rebuilding included):
        /// what its receipt must commit to.
        var sent = CommitmentBuilder()
        init(span: LayerSpan, alternatives: [Candidate]) {
            self.span = span
            self.alternatives = alternatives
        }
        var current: Candidate? { index < alternatives.count ? alternatives[index] : nil }
    }

    /// What the whole attempt shares: the request and what the pipeline has produced.
    final class Run: @unchecked Sendable {
        // Invariant: `sampled` is written only between steps (by the decode loop).
        let gen: GenerateRequest
        let requestor: Address, requestId: Hash256
        let timeout: Int64
        /// The positions before the first sample (from the first shard) and the width of a state.
        var prompt: [TokenID] = []
        var width = 0
        /// Tokens sampled in this attempt.
        var sampled: [TokenID] = []
        init(gen: GenerateRequest, requestor: Address, requestId: Hash256, timeout: Int64) {
            self.gen = gen
            self.requestor = requestor
            self.requestId = requestId
            self.timeout = timeout
        }
    }

    func call(_ c: Candidate, _ gen: GenerateRequest, requestor: Address, requestId: Hash256, policy: RoutingPolicy,
              onEvent: (NodeEvent) async throws -> Void) async throws -> NodeAnswer {
        guard let spans = c.stages, !spans.isEmpty else { throw NodeFailure(status: 500, code: "internal", message: "not a pipeline", retryable: false) }
        let run = Run(gen: gen, requestor: requestor, requestId: requestId, timeout: Int64(policy.timeoutMs ?? 120_000))
        let stages = spans.map { Stage(span: $0[0].offer.layers!, alternatives: $0) }
        // Open every stage at once; the first shard's tokens are the prompt.
        let opened = try await withThrowingTaskGroup(of: (Int, ShardOpened).self) { group in
            for (i, s) in stages.enumerated() { group.addTask { (i, try await self.openWithFailover(s, run)) } }
            var out: [Int: ShardOpened] = [:]
            for try await (i, o) in group { out[i] = o }
            return out
        }
        let first = opened[0]!
        // The width of a state, as the last shard (which checks what it is sent) says.
        run.width = opened[stages.count - 1]!.width
        for (i, o) in opened where o.width != run.width {
            fault(stages[i], ShardFault(message: "a shard of layers \(stages[i].span) claims states of width \(o.width), not \(run.width)"))
        }
        guard let tokens = first.tokens, ShardOpened.hash(tokens) == first.tokensHash, tokens.count == first.positions,
              opened.values.allSatisfy({ $0.tokensHash == first.tokensHash && $0.positions == first.positions }) else {
            throw NodeFailure(status: 502, code: "shard_disagreement", message: "the pipeline's shards tokenized the request differently", retryable: true)
        }
        let prompt = tokens
        run.prompt = tokens
        // The prompt, pipelined: at tick t, stage s runs batch t − s.
        var batches: [[TokenID]] = []
        var at = 0
        while at < prompt.count {
            let n = min(Self.microBatch, prompt.count - at)
            batches.append(Array(prompt[at..<(at + n)]))
            at += n
        }
        var carried: [Int: ShardFrame.Input] = [:]  // stage → the input waiting for it
        var lastReply: ShardFrame.Reply?
        for tick in 0..<(batches.count + stages.count - 1) {
            let work: [(Int, ShardFrame.Input, Bool)] = stages.indices.compactMap { s in
                let b = tick - s
                guard b >= 0, b < batches.count else { return nil }
                let input = s == 0 ? ShardFrame.Input.tokens(batches[b]) : carried[s]!
                return (s, input, s == stages.count - 1 && b == batches.count - 1)
            }
            let replies = try await withThrowingTaskGroup(of: (Int, ShardFrame.Reply).self) { group in
                for (s, input, sample) in work { group.addTask { (s, try await self.step(stages, s, input, sample: sample, run)) } }
                var out: [(Int, ShardFrame.Reply)] = []
                for try await r in group { out.append(r) }
                return out
            }
            for (s, reply) in replies {
                if s + 1 < stages.count {
                    guard case let .states(h, w) = reply else { throw NodeFailure(status: 502, code: "internal", message: "unchecked reply", retryable: true) }
                    carried[s + 1] = .hidden(h, width: w)
                } else {
                    lastReply = reply
                }
            }
        }
        // Then one token at a time.
        var finish: ShardFrame.Done?
        while true {
            guard case let .sampled(pieces, done) = lastReply else { break }
            for p in pieces {
                if let t = p.token { run.sampled.append(t) }
                var e = p.token.map { NodeEvent.token($0, p.text) } ?? NodeEvent(type: "text", text: p.text)
                if p.token != nil, let lp = p.logprob {
                    e.tokenText = p.tokenText
                    e.logprob = lp
                    e.top = p.top
                }
                try await onEvent(e)
            }
            if let done {
                finish = done
                break
            }
            guard let next = run.sampled.last, !pieces.isEmpty else {
                throw NodeFailure(status: 502, code: "node_stream_broken", message: "the last shard sampled nothing", retryable: true)
            }
            var input = ShardFrame.Input.tokens([next])
            for s in stages.indices {
                let reply = try await step(stages, s, input, sample: s == stages.count - 1, run)
                if case let .states(h, w) = reply { input = .hidden(h, width: w) } else { lastReply = reply }
            }
        }
        guard let finish else { throw NodeFailure(status: 502, code: "node_stream_broken", message: "the pipeline ended without finishing", retryable: true) }
        let receipts = try await closeAll(stages, run)
        return NodeAnswer(receipts: receipts, finish: finish.finish, promptTokens: finish.promptTokens, cachedTokens: 0)
    }

    // MARK: Stages

    /// Opens the stage's sequence on its shard, moving to the next shard of its span while one fails.
    func openWithFailover(_ stage: Stage, _ run: Run) async throws -> ShardOpened {
        while let c = stage.current {
            do {
                return try await open(stage, c, run)
            } catch let f as ShardFault {
                fault(stage, f)
            }
        }
        throw NodeFailure(status: 503, code: "no_node_available", message: "no shard left for layers \(stage.span)", retryable: true)
    }

    /// Opens on `c`. The last stage samples for the request continued by what was sampled so far.
    func open(_ stage: Stage, _ c: Candidate, _ run: Run) async throws -> ShardOpened {
        var gen = run.gen
        if stage.span.isLast { gen.continuation += run.sampled }
        let body = ShardOpenRequest(request: gen, layers: stage.span).body
        let env = nodes.envelope(for: c.node.nodeKey, body: body, requestor: run.requestor, requestId: run.requestId, timeoutMillis: run.timeout)
        let (status, reply) = try await exchange(c, path: "/v1/shard/open", headers: [("content-type", "application/json"), (Envelope.header, env.hex)],
                                                 body: body, limit: 16 << 20, run)
        guard status == 200 else {
            let e = try? JSONDecoder().decode(NodeErrorBody.self, from: Data(reply))
            let code = e?.error.code ?? "node_error", message = e?.error.message ?? "shard answered \(status)"
            if status == 400, ["out_of_range", "malformed", "unsupported"].contains(code), stage.span.isFirst {
                // The request's own fault (the first shard is asked first among equals).
                throw NodeFailure(status: 400, code: code == "out_of_range" ? "context_length_exceeded" : code, message: message, retryable: false)
            }
            throw ShardFault(message: "shard \(c.node.nodeKey.short) refused the open: \(message)")
        }
        guard let o = try? JSONDecoder().decode(ShardOpened.self, from: Data(reply)) else { throw ShardFault(message: "shard \(c.node.nodeKey.short) sent a malformed open answer") }
        guard o.modelHash == directory.model(run.gen.model)?.weightsHash else {
            throw ShardFault(message: "shard \(c.node.nodeKey.short) serves weights \(o.modelHash.hex.prefix(16)), not the model card's")
        }
        stage.handle = o.sequence
        stage.framePort = o.framePort.flatMap { (1...65_535).contains($0) ? $0 : nil }
        stage.sent = CommitmentBuilder()
        return o
    }

    /// Runs `input` through stage `s`; on its shard's fault, replaces the shard, rebuilds it from
    /// what entered the stage before, and runs `input` again.
    func step(_ stages: [Stage], _ s: Int, _ input: ShardFrame.Input, sample: Bool, _ run: Run) async throws -> ShardFrame.Reply {
        let stage = stages[s]
        while let c = stage.current {
            do {
                if stage.handle == nil {
                    let o = try await open(stage, c, run)
                    guard o.width == run.width else { throw ShardFault(message: "shard \(c.node.nodeKey.short) claims states of width \(o.width), not \(run.width)") }
                    let expected = stage.span.isLast ? run.prompt + run.sampled : run.prompt
                    guard o.tokensHash == ShardOpened.hash(expected), o.positions == expected.count else {
                        throw ShardFault(message: "shard \(c.node.nodeKey.short) tokenized the request differently")
                    }
                    try await rebuild(stage, c, run)
                }
                let reply = try await send(stage, c, input, sample: sample, run)
                switch input {
                case let .tokens(t): stage.tokens += t
                case let .hidden(h, _): stage.states += h
                }
                return reply
            } catch let f as ShardFault {
                fault(stage, f)
            }
        }
        throw NodeFailure(status: 503, code: "no_node_available", message: "no shard left for layers \(stage.span)", retryable: true)
    }

    /// Replays what entered the stage so far into a freshly opened shard (its KV cache).
    func rebuild(_ stage: Stage, _ c: Candidate, _ run: Run) async throws {
        let rows = stage.span.isFirst ? stage.tokens.count : (run.width == 0 ? 0 : stage.states.count / run.width)
        var at = 0
        while at < rows {
            let n = min(Self.microBatch, rows - at)
            let input: ShardFrame.Input = stage.span.isFirst
                ? .tokens(Array(stage.tokens[at..<(at + n)]))
                : .hidden(Array(stage.states[(at * run.width)..<((at + n) * run.width)]), width: run.width)
            _ = try await send(stage, c, input, sample: false, run, rebuilding: true)
            at += n
        }
    }

    /// One step frame to the stage's shard, and its checked answer.
    func send(_ stage: Stage, _ c: Candidate, _ input: ShardFrame.Input, sample: Bool, _ run: Run, rebuilding: Bool = false) async throws -> ShardFrame.Reply {
        guard let handle = stage.handle else { throw ShardFault(message: "stage \(stage.span) is not open") }
        let frame = ShardFrame.encode(ShardFrame.Step(sequence: handle, sample: sample, input: input))
        let start = DispatchTime.now().uptimeNanoseconds
        defer { GatewayMetrics.shardExchange.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }
        let bytes: [UInt8]
        if let port = stage.framePort, let target = PlainHTTPClient.Target(url: c.node.endpoint) {
            do {
                bytes = try await frames.exchange(host: target.host, port: port, frame, limit: ShardFrame.maxBytes, timeoutSeconds: Double(run.timeout) / 1000)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw ShardFault(message: "shard \(c.node.nodeKey.short): \(error)")
            }
        } else {
            let (status, body) = try await exchange(c, path: "/v1/shard/step", headers: [("content-type", "application/octet-stream")],
                                                    body: frame, limit: ShardFrame.maxBytes, run)
            guard status == 200 else {
                let e = try? JSONDecoder().decode(NodeErrorBody.self, from: Data(body))
                throw ShardFault(message: "shard \(c.node.nodeKey.short) refused a step: \(e?.error.message ?? "status \(status)")")
            }
            bytes = body
        }
        let reply: ShardFrame.Reply
        do { reply = try ShardFrame.decodeReply(bytes) } catch { throw ShardFault(message: "shard \(c.node.nodeKey.short) sent a malformed frame: \(error)") }
        switch reply {
        case let .error(_, message):
            throw ShardFault(message: "shard \(c.node.nodeKey.short) refused a step: \(message)")
        case let .states(h, w):
            guard !stage.span.isLast else { throw ShardFault(message: "the last shard \(c.node.nodeKey.short) sent states") }
            guard w == run.width, h.count == input.rows * w else {
                throw ShardFault(message: "shard \(c.node.nodeKey.short) sent \(h.count) values of width \(w) for \(input.rows) rows")
            }
            stage.sent.add(rows: h, width: w)
        case let .sampled(pieces, _):
            guard stage.span.isLast else { throw ShardFault(message: "shard \(c.node.nodeKey.short) of layers \(stage.span) sampled") }
            guard rebuilding ? pieces.isEmpty : (sample || pieces.isEmpty) else { throw ShardFault(message: "the last shard \(c.node.nodeKey.short) sampled out of turn") }
        }
        return reply
    }

    /// A shard's fault: counted against it (its breaker), and the next shard of its span takes over.
    func fault(_ stage: Stage, _ f: ShardFault) {
        if let c = stage.current { directory.end(c.node.nodeKey, ok: false, ttftMillis: nil, tokensPerSecond: nil) }
        stage.index += 1
        stage.handle = nil
        GatewayMetrics.failovers.increment()
    }

    /// Closes every stage and checks each shard's receipt.
    func closeAll(_ stages: [Stage], _ run: Run) async throws -> [Receipt] {
        try await withThrowingTaskGroup(of: (Int, Receipt).self) { group in
            for (i, stage) in stages.enumerated() {
                guard let c = stage.current, let handle = stage.handle else { continue }
                group.addTask {
                    let body = Array(try JSONEncoder().encode(ShardClose(sequence: handle)))
                    let (status, bytes) = try await self.exchange(c, path: "/v1/shard/close", headers: [("content-type", "application/json")],
                                                                  body: body, limit: 1 << 20, run)
                    guard status == 200, let closed = try? JSONDecoder().decode(ShardClosed.self, from: Data(bytes)) else {
                        throw NodeFailure(status: 502, code: "bad_receipt", message: "shard \(c.node.nodeKey.short) sent no receipt", retryable: true)
                    }
                    let r = closed.receipt
                    // What the shard commits to is what passed through the gateway.
                    var received = CommitmentBuilder()
                    if !stage.span.isFirst { received.add(rows: stage.states, width: run.width) }
                    let receivedRoot = stage.span.isFirst ? Hash256.zero : received.finish().root
                    let sentRoot = stage.span.isLast ? Hash256.zero : stage.sent.finish().root
                    guard r.shard?.received == receivedRoot, r.shard?.sent == sentRoot, !stage.span.isLast || r.samples else {
                        throw NodeFailure(status: 502, code: "bad_receipt", message: "shard \(c.node.nodeKey.short) signed for states other than those it relayed", retryable: true)
                    }
                    guard r.node == c.node.nodeKey, r.requestId == run.requestId, r.requestor == run.requestor, r.shard?.layers == stage.span,
                          r.priceIn <= c.offer.priceIn, r.priceOut <= c.offer.priceOut, r.firstOutputToken >= UInt64(run.gen.continuation.count),
                          r.node.verifies(r.nodeSignature, over: r.nodeSigningBytes(chainId: self.nodes.chainId)) else {
                        throw NodeFailure(status: 502, code: "bad_receipt", message: "shard \(c.node.nodeKey.short) sent an invalid receipt", retryable: true)
                    }
                    self.directory.end(c.node.nodeKey, ok: true, ttftMillis: nil, tokensPerSecond: nil)
                    return (i, r)
                }
            }
            var out: [(Int, Receipt)] = []
            for try await r in group { out.append(r) }
            let receipts = out.sorted { $0.0 < $1.0 }.map(\.1)
            guard Set(receipts.map(\.modelHash)).count == 1 else {
                throw NodeFailure(status: 502, code: "bad_receipt", message: "the pipeline's shards name different weights", retryable: true)
            }
            return receipts
        }
    }

    /// A POST to a shard; a connection that breaks or times out is the shard's fault.
    func exchange(_ c: Candidate, path: String, headers: [(String, String)], body: [UInt8], limit: Int, _ run: Run) async throws -> (Int, [UInt8]) {
        guard let target = PlainHTTPClient.Target(url: c.node.endpoint) else { throw ShardFault(message: "shard \(c.node.nodeKey.short) has no plain http endpoint") }
        do {
            return try await nodes.plain.post(target, path: path, headers: headers, body: body, timeout: .milliseconds(run.timeout)) { response in
                var bytes: [UInt8] = []
                while let piece = try await response.body.next() {
                    bytes += piece
                    guard bytes.count <= limit else { throw ShardFault(message: "shard \(c.node.nodeKey.short) sent more than \(limit) bytes") }
                }
                return (response.status, bytes)
            }
        } catch let f as ShardFault {
            throw f
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw ShardFault(message: "shard \(c.node.nodeKey.short): \(error)")
        }
    }
}
