import Foundation
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger
import PlexusWire
import Synchronization

/// A node serving layers of a model as one shard of pipelines (`node start --layers A-B`):
/// `POST /v1/shard/open` under a gateway's envelope, then binary `/v1/shard/step` frames naming
/// the handle the open returned, then `/v1/shard/close` for the shard's signed receipt.
/// Sequences a gateway forgets are closed after `idleSeconds` without a step.
public final class ShardService: @unchecked Sendable {
    // Invariant: `open` only under `lock`.
    public let engine: ShardEngine
    public let span: LayerSpan
    public let modelHash: Hash256
    let key: KeyPair
    let modelId: String
    let priceIn: Amount, priceOut: Amount
    let template: ChatTemplate?
    let workers: WorkerPool
    let idleSeconds: Double
    /// The port of the frame link (`FrameServer`) beside the node's HTTP port, once it listens.
    public var framePort: Int? {
        get { lock.withLock { port } }
        set { lock.withLock { port = newValue } }
    }
    private var port: Int?
    private let lock = NSLock()
    private var open: [Hash256: Opened] = [:]

    struct Opened {
        var envelope: Envelope
        var request: GenerateRequest
        /// Positions before the first sample (prompt and continuation).
        var positions: Int
        /// The last position a piece was streamed for.
        var lastPosition: Int
        var lastUsed: Date
    }

    public init(engine: ShardEngine, modelHash: Hash256, key: KeyPair, model: String, priceIn: Amount, priceOut: Amount, idleSeconds: Double = 120) throws {
        self.engine = engine
        let L = engine.model.config.layers
        span = LayerSpan(start: UInt32(engine.layers.lowerBound), end: UInt32(engine.layers.upperBound), total: UInt32(L))
        self.modelHash = modelHash
        self.key = key
        modelId = model
        self.priceIn = priceIn
        self.priceOut = priceOut
        template = try engine.model.file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
        workers = WorkerPool(limit: engine.slots + 2, name: "plexus-shard-step")
        self.idleSeconds = idleSeconds
    }

    public var openSequences: Int { lock.withLock { open.count } }

    /// Opens a sequence for `envelope` (already checked by the node's guard) and `body`.
    func open(_ envelope: Envelope, body: [UInt8]) throws -> ShardOpened {
        reapIdle()
        let o: ShardOpenRequest
        do { o = try JSONDecoder().decode(ShardOpenRequest.self, from: Data(body)) } catch {
            throw APIError(.badRequest, .malformed, "body is not a shard open request")
        }
        let r = o.request
        guard r.model == modelId else { throw APIError(.notFound, .notFound, "this shard serves '\(modelId)', not '\(r.model.prefix(64))'") }
        guard o.layers == span else { throw APIError(.badRequest, .malformed, "this shard serves layers \(span) of \(span.total), not \(o.layers)") }
        let context = engine.model.config.contextLength
        guard r.maxTokens >= 1, r.maxTokens <= context, r.continuation.count < r.maxTokens else {
            throw APIError(.badRequest, .outOfRange, "max_tokens must be 1...\(context) and exceed the continuation")
        }
        let all = try r.promptTokens(model: engine.model, template: template) + r.continuation
        guard all.count < context else { throw APIError(.badRequest, .outOfRange, "the prompt has \(all.count) tokens; the model's context is \(context)") }
        let request = GenerationRequest(prompt: all, maxTokens: r.maxTokens - r.continuation.count, sampling: r.sampling,
                                        stop: r.stop, continued: r.continuation.count, logprobs: r.logprobs, responseFormat: r.responseFormat)
        var handle = [UInt8](repeating: 0, count: 32)
        for i in handle.indices { handle[i] = UInt8.random(in: 0...255) }
        let sequence = try Hash256(bytes: handle)
        try engine.open(sequence, capacity: min(context, all.count + request.maxTokens + 1), request: engine.isLast ? request : nil,
                        commitmentInterval: request.commitmentInterval)
        NodeMetrics.shardOpen.record(engine.openSequences)
        lock.withLock { open[sequence] = Opened(envelope: envelope, request: r, positions: all.count, lastPosition: all.count - 1, lastUsed: Date()) }
        var opened = ShardOpened(sequence: sequence, positions: all.count, tokensHash: ShardOpened.hash(all), tokens: engine.isFirst ? all : nil,
                                 modelHash: modelHash, width: engine.model.config.embedding)
        opened.framePort = framePort
        return opened
    }

    /// Runs one step frame (over HTTP); answers a frame. The engine runs on a worker thread.
    func step(_ body: [UInt8]) async throws -> [UInt8] {
        let result: Result<[UInt8], any Error> = await withCheckedContinuation { k in
            workers.submit { [self] in k.resume(returning: Result { try answer(body) }) }
        }
        return try result.get()
    }

    /// Runs one step frame on the frame link (`FrameServer`, on the connection's own thread);
    /// a refusal travels as an error frame.
    public func frame(_ body: [UInt8]) -> [UInt8] {
        do {
            return try answer(body)
        } catch let e as APIError {
            return ShardFrame.encode(.error(code: e.code.rawValue, message: e.message))
        } catch {
            return ShardFrame.encode(.error(code: "internal", message: "\(error)"))
        }
    }

    /// Runs one step frame through the engine (blocking) and encodes the answer.
    func answer(_ body: [UInt8]) throws -> [UInt8] {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { NodeMetrics.shardStep.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }
        let frame: ShardFrame.Step
        do { frame = try ShardFrame.decodeStep(body) } catch let e as PlexusError {
            throw APIError(.badRequest, .malformed, "bad step frame: \(e.message)")
        }
        guard lock.withLock({ () -> Bool in
            guard open[frame.sequence] != nil else { return false }
            open[frame.sequence]!.lastUsed = Date()
            return true
        }) else { throw APIError(.notFound, .notFound, "no open sequence with that handle") }
        let input: ShardEngine.Input
        switch frame.input {
        case let .tokens(t): input = .tokens(t)
        case let .hidden(h, width):
            guard width == engine.model.config.embedding else {
                throw APIError(.badRequest, .malformed, "states of width \(width) for a model of width \(engine.model.config.embedding)")
            }
            input = .hidden(h, rows: h.count / width)
        }
        let sequence = frame.sequence
        let t0 = DispatchTime.now().uptimeNanoseconds
        let output: ShardEngine.Output
        do { output = try engine.step(sequence, input, sample: frame.sample) } catch let e as PlexusError { throw APIError(e) }
        NodeMetrics.shardCompute.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - t0))
        switch output {
        case let .hidden(h):
            return ShardFrame.encode(.states(h, width: engine.model.config.embedding))
        case let .sampled(pieces, generation):
            let tokenizer = engine.model.tokenizer
            // As a node streams: a piece at a new position carries its token; text held back
            // and released at the end carries none.
            var last = lock.withLock { open[sequence]?.lastPosition ?? Int.max }
            var out: [ShardFrame.Piece] = []
            for p in pieces {
                let isNew = p.position > last
                last = max(last, p.position)
                var f = ShardFrame.Piece(token: isNew ? p.token : nil, text: p.text)
                if isNew, let lp = p.logprob {
                    f.tokenText = tokenizer.decode([p.token])
                    f.logprob = Double(lp)
                    f.top = p.top.map { .init(token: $0.token, text: tokenizer.decode([$0.token]), logprob: Double($0.logprob)) }
                }
                out.append(f)
            }
            lock.withLock { open[sequence]?.lastPosition = last }
            let done = generation.map { ShardFrame.Done(finish: $0.finish == .endOfSequence ? "stop" : $0.finish.rawValue, promptTokens: $0.promptTokens) }
            return ShardFrame.encode(.sampled(out, done: done))
        }
    }

    /// Closes a sequence and signs the shard's receipt for it.
    func close(_ body: [UInt8], chainId: String) throws -> ShardClosed {
        let c: ShardClose
        do { c = try JSONDecoder().decode(ShardClose.self, from: Data(body)) } catch {
            throw APIError(.badRequest, .malformed, "body is not a shard close request")
        }
        guard let o = lock.withLock({ open.removeValue(forKey: c.sequence) }), let s = engine.close(c.sequence) else {
            throw APIError(.notFound, .notFound, "no open sequence with that handle")
        }
        let ran = min(s.rows, o.positions)
        let output = engine.isLast ? s.output.count : s.rows - ran
        let commitment: ReceiptCommitment
        if engine.isLast, let f = s.final {
            commitment = ReceiptCommitment(root: f.root, chunks: UInt32(f.chunks.count), exact: true)
        } else if let sent = s.sent {
            commitment = ReceiptCommitment(root: sent.root, chunks: UInt32(sent.chunks.count), exact: true)
        } else {
            commitment = ReceiptCommitment(root: .zero, chunks: 0, exact: true)
        }
        var receipt = Receipt(requestId: o.envelope.requestId, requestHash: o.envelope.bodyHash, requestor: o.envelope.requestor,
                              node: key.address, modelHash: modelHash, inputTokens: UInt64(ran), outputTokens: UInt64(output),
                              firstOutputToken: UInt64(o.request.continuation.count), priceIn: priceIn, priceOut: priceOut,
                              outputHash: engine.isLast ? outputHash(s.output) : .zero, timeMillis: SystemClock().nowMillis(), commitment: commitment)
        receipt.shard = ShardWork(layers: span, received: s.received?.root ?? .zero, sent: s.sent?.root ?? .zero, positions: UInt64(s.rows))
        receipt.signAsNode(key, chainId: chainId)
        return ShardClosed(receipt: receipt)
    }

    /// Closes sequences no step has touched for `idleSeconds` (a gateway that went away).
    func reapIdle() {
        let cutoff = Date().addingTimeInterval(-idleSeconds)
        let stale = lock.withLock { () -> [Hash256] in
            let ids = open.filter { $0.value.lastUsed < cutoff }.map(\.key)
            for id in ids { open.removeValue(forKey: id) }
            return ids
        }
        for id in stale { engine.close(id) }
    }
}

/// What a shard node's `/v1/generate` is: a refusal (it serves steps of pipelines only).
public struct ShardOnlyBackend: GenerationBackend {
    public let span: LayerSpan
    public let modelHash: Hash256
    public let contextLength: Int
    public var name: String { "engine shard (layers \(span) of \(span.total))" }
    public var exactlyReExecutable: Bool { true }

    public init(_ service: ShardService) {
        span = service.span
        modelHash = service.modelHash
        contextLength = service.engine.model.config.contextLength
    }

    public func generate(_ request: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        throw PlexusError(.unsupported, "this node serves layers \(span) of \(span.total) as a pipeline shard, not whole requests")
    }
}
