import Foundation
import Logging
import NIOCore
import PlexusCore
import PlexusEngine
import PlexusHTTP
import PlexusLedger
import PlexusWire
import Synchronization

/// How a node runs.
public struct NodeConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 0
    /// The URL registered on the ledger (default: http://host:port).
    public var publicURL: String?
    public var ledgerURL: String
    /// Operator account and node key (one key signs transactions and receipts).
    public var key: KeyPair
    /// The model card id served.
    public var model: String
    public var priceIn: Amount
    public var priceOut: Amount
    public var concurrency = 4
    /// Fixed limits per gateway (rate and requests in flight), beside the fair share of the
    /// slots every active gateway is owed (`GatewayShares`). None by default.
    public var gatewayLimits = RateLimits.none
    public var region = "local"
    public var privacy = "standard"
    /// A shard's layers (nil: the whole model), and the port of its frame link (0: any free one).
    public var layers: LayerSpan?
    public var framePort = 0

    public init(ledgerURL: String, key: KeyPair, model: String, priceIn: Amount, priceOut: Amount) {
        self.ledgerURL = ledgerURL
        self.key = key
        self.model = model
        self.priceIn = priceIn
        self.priceOut = priceOut
    }
}

/// Checks envelopes: signed by a registered gateway, for this node, unexpired, not replayed.
final class EnvelopeGuard: @unchecked Sendable {
    // Invariant: mutable state only under `lock`.
    private let lock = NSLock()
    private var seen: [Hash256: UInt64] = [:]
    private var gateways: Set<Address> = []
    private var refreshedAt: UInt64 = 0
    let chainId: String
    let node: Address
    let ledger: LedgerClient
    static let maxLifetimeMillis: UInt64 = 10 * 60 * 1_000
    /// Envelopes arriving together are verified together.
    let signatures = SignatureBatcher(later: SignatureBatcher.onEventLoop)

    init(chainId: String, node: Address, ledger: LedgerClient) {
        self.chainId = chainId
        self.node = node
        self.ledger = ledger
    }

    func isGateway(_ key: Address) async -> Bool {
        let now = SystemClock().nowMillis()
        let (known, stale) = lock.withLock { (gateways.contains(key), now > refreshedAt + 1_000) }
        if known { return true }
        guard stale, let list = try? await ledger.gateways() else { return false }
        return lock.withLock {
            gateways = Set(list.map(\.key))
            refreshedAt = now
            return gateways.contains(key)
        }
    }

    /// Throws an API error unless the envelope authorises `body` now.
    func check(_ e: Envelope, body: [UInt8]) async throws {
        let now = SystemClock().nowMillis()
        guard e.node == node else { throw APIError(.forbidden, .badSignature, "the envelope is for another node") }
        guard Hash256.of(body) == e.bodyHash else { throw APIError(.forbidden, .badSignature, "the body does not match the envelope") }
        guard e.expiresAtMillis >= now else { throw APIError(.forbidden, .expired, "the envelope has expired") }
        guard e.expiresAtMillis <= now + Self.maxLifetimeMillis else { throw APIError(.forbidden, .expired, "the envelope lives too long") }
        guard await signatures.verify(e.signature, by: e.gateway, over: e.signingBytes(chainId: chainId)) else {
            throw APIError(.unauthorized, .badSignature, "the envelope's signature does not verify")
        }
        guard await isGateway(e.gateway) else { throw APIError(.forbidden, .notFound, "\(e.gateway.short) is not a registered gateway") }
        try lock.withLock {
            if seen.count > 100_000 { seen = seen.filter { $0.value >= now } }
            guard seen[e.requestId] == nil else { throw APIError(.conflict, .replayed, "request \(e.requestId.hex.prefix(16)) was already served") }
            seen[e.requestId] = e.expiresAtMillis
        }
    }
}

/// A node: serves `POST /v1/generate` (server-sent events) for envelopes
/// signed by registered gateways, signs a receipt for each answer, and
/// serves `/health` and `/metrics`.
public struct NodeServer: Sendable {
    public let config: NodeConfig
    public let backend: any GenerationBackend
    public let logger: Logger
    public let metrics: @Sendable () -> [UInt8]
    /// A shard node's pipeline steps (its `/v1/generate` refuses).
    public let shard: ShardService?

    public init(config: NodeConfig, backend: any GenerationBackend, shard: ShardService? = nil, logger: Logger, metrics: @escaping @Sendable () -> [UInt8]) {
        self.config = config
        self.backend = backend
        self.shard = shard
        self.logger = logger
        self.metrics = metrics
    }

    /// Registers or updates this node on the ledger (staking up to the
    /// minimum if needed) so that its record matches `endpoint` and its offer.
    public static func register(_ config: NodeConfig, backend: any GenerationBackend, endpoint: String, ledger: LedgerClient) async throws {
        let status = try await ledger.status()
        guard let card = try await ledger.models().first(where: { $0.id == config.model }) else {
            throw PlexusError(.notFound, "model '\(config.model)' has no model card on the ledger; its creator registers it first")
        }
        guard card.weightsHash == backend.modelHash else {
            throw PlexusError(.badModel, "the weights served (\(backend.modelHash.hex.prefix(16))) are not model '\(config.model)''s (\(card.weightsHash.hex.prefix(16)))")
        }
        let offer = Offer(model: config.model, priceIn: config.priceIn, priceOut: config.priceOut, concurrency: UInt32(config.concurrency),
                          contextLength: UInt32(min(backend.contextLength, Int(UInt32.max))), privacy: config.privacy, region: config.region,
                          layers: config.layers)
        let me = config.key.address
        if let existing = try await ledger.nodes().first(where: { $0.owner == me }) {
            if existing.endpoint != endpoint || existing.offers != [offer] {
                _ = try await ledger.send(.updateNode(endpoint: endpoint, offers: [offer]), from: config.key)
            }
            return
        }
        let params = try await ledger.params()
        let minStake = params.params.first { $0.name == "minNodeStake" }?.value ?? 0
        let account = try await ledger.account(me)
        if account.staked.units < minStake {
            _ = try await ledger.send(.stake(amount: Amount(units: minStake - account.staked.units)), from: config.key)
        }
        let proof = config.key.sign(Registry.nodeKeyProofBytes(chainId: status.chainId, owner: me))
        _ = try await ledger.send(.registerNode(nodeKey: me, keyProof: proof, endpoint: endpoint, offers: [offer]), from: config.key)
    }

    /// Serves until a shutdown signal; `onListening` receives the bound port.
    public func run(onListening: @escaping @Sendable (Int) async throws -> Void = { _ in }) async throws {
        let ledger = LedgerClient(baseURL: config.ledgerURL)
        let status = try await ledger.status()
        let guardian = EnvelopeGuard(chainId: status.chainId, node: config.key.address, ledger: ledger)
        let admission = Admission(slots: config.concurrency, perGateway: config.gatewayLimits)
        let workers = WorkerPool(limit: config.concurrency, name: "plexus-generate")
        let config = self.config, backend = self.backend, metrics = self.metrics, logger = self.logger, shard = self.shard
        let chainId = status.chainId
        // The batch scheduler's counters, read into the metrics once a second.
        // The node's registration, as gateways see it, for `/health` (from the moment it registers).
        let health = NodeHealth(now: SystemClock().nowMillis())
        let endpoint = Mutex<String?>(nil)
        let watchTask = Task.detached { await health.watch(node: config.key.address, ledger: ledger) }
        defer { watchTask.cancel() }
        let statsTask = Task.detached {
            while !Task.isCancelled {
                if let s = backend.batchStats { NodeMetrics.record(s) }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        defer { statsTask.cancel() }

        @Sendable func generate(_ request: HTTPRequestIn) async throws -> HTTPResponseOut {
            guard let header = request.header(Envelope.header) else {
                throw APIError(.unauthorized, .badSignature, "missing \(Envelope.header)")
            }
            let envelope: Envelope
            do { envelope = try Envelope(hex: header) } catch { throw APIError(.badRequest, .malformed, "malformed envelope") }
            let body = request.body
            try await guardian.check(envelope, body: body)
            let gen: GenerateRequest
            do { gen = try GenerateRequest.decode(body) } catch {
                throw APIError(.badRequest, .malformed, "body is not a generate request")
            }
            guard gen.model == config.model else { throw APIError(.notFound, .notFound, "this node serves '\(config.model)', not '\(gen.model.prefix(64))'") }
            guard gen.maxTokens >= 1, gen.maxTokens <= backend.contextLength, gen.continuation.count < gen.maxTokens else {
                throw APIError(.badRequest, .outOfRange, "max_tokens must be 1...\(backend.contextLength) and exceed the continuation")
            }
            if !backend.fullSampling, gen.presencePenalty != nil || gen.frequencyPenalty != nil || gen.logitBias != nil || gen.responseFormat != nil {
                throw APIError(.badRequest, .unsupported,
                               "this node's backend (\(backend.name)) does not take presence_penalty, frequency_penalty, logit_bias or response_format")
            }
            if !backend.reportsLogprobs, gen.logprobs != nil {
                throw APIError(.badRequest, .unsupported, "this node's backend (\(backend.name)) does not report logprobs")
            }
            try admission.enter(envelope.gateway)
            NodeMetrics.requests.increment()
            /// Runs the backend, writing events to `sink`; false once `sink` refuses (the client went away).
            @Sendable func run(_ sink: ([UInt8]) -> Bool) {
                do {
                    let result = try backend.generate(gen) { (p: BackendPiece) in
                        let event: [UInt8]
                        if let token = p.token, let lp = p.logprob {
                            var e = NodeEvent.token(token, p.text)
                            e.tokenText = p.tokenText
                            e.logprob = lp
                            e.top = p.top
                            event = e.sse
                        } else {
                            event = p.token.map { FastJSON.tokenEvent($0, p.text) } ?? NodeEvent(type: "text", text: p.text).sse
                        }
                        guard sink(event) else { throw CancellationError() }
                    }
                    var receipt = Receipt(requestId: envelope.requestId, requestHash: envelope.bodyHash, requestor: envelope.requestor,
                                          node: config.key.address, modelHash: backend.modelHash, inputTokens: UInt64(result.promptTokens),
                                          outputTokens: UInt64(result.tokens.count), firstOutputToken: UInt64(gen.continuation.count),
                                          priceIn: config.priceIn, priceOut: config.priceOut, outputHash: outputHash(result.tokens),
                                          timeMillis: SystemClock().nowMillis(), commitment: result.commitment)
                    receipt.signAsNode(config.key, chainId: chainId)
                    NodeMetrics.tokens.increment(by: result.tokens.count)
                    _ = sink(FastJSON.doneEvent(finish: result.finish, promptTokens: result.promptTokens, cachedTokens: result.cachedTokens, receipt: receipt))
                } catch is CancellationError {
                    logger.debug("request cancelled", metadata: ["request": "\(envelope.requestId.hex.prefix(16))"])
                } catch let e as PlexusError {
                    _ = sink(NodeEvent.error(e).sse)
                } catch {
                    _ = sink(NodeEvent.error(PlexusError(.io, "\(error)")).sse)
                }
            }
            let headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
            if backend.answersAtOnce {
                defer { admission.leave(envelope.gateway) }
                var out: [UInt8] = []
                run { bytes in
                    out += bytes
                    return true
                }
                return .full(status: 200, headers: headers, body: out)
            }
            // Streamed: the generation stops at its next token once the client is gone (the server closes the pipe).
            let pipe = BytePipe()
            workers.submit {
                defer { admission.leave(envelope.gateway) }
                run { pipe.write($0) }
                pipe.finish()
            }
            return .stream(status: 200, headers: headers, body: pipe)
        }

        // A shard's steps also come as frames over TCP, on a port of their own beside HTTP.
        let frames = try shard.map { s in try FrameServer(host: config.host, port: config.framePort, maxMessage: ShardFrame.maxBytes) { s.frame($0) } }
        shard?.framePort = frames?.port
        defer { frames?.stop() }
        let server = PlainHTTPServer(host: config.host, port: config.port, maxBody: shard == nil ? 1 << 20 : ShardFrame.maxBytes, name: "plexus-node") { request in
            do {
                switch (request.method, request.path) {
                case (.GET, "/health"):
                    let now = SystemClock().nowMillis()
                    let registered = endpoint.withLock { $0 }
                    // Before it has registered, a starting node has nothing to judge its listing by.
                    let problems = registered == nil ? [] : NodeHealth.problems(health.facts.withLock { $0 }, expectedEndpoint: registered, now: now)
                    let (status, code) = HealthProblem.verdict(problems)
                    return .json(Array(try LedgerAPI.encoder.encode(HealthView(status: status, problems: problems, node: config.key.address.text, model: config.model,
                                                                                 backend: backend.name, inFlight: admission.current,
                                                                                 concurrency: config.concurrency, exact: backend.exactlyReExecutable,
                                                                                 layers: config.layers?.description, openSequences: shard?.openSequences,
                                                                                 framePort: shard?.framePort))), status: code)
                case (.GET, "/metrics"):
                    return .full(status: 200, headers: [("content-type", "text/plain; version=0.0.4")], body: metrics())
                case (.POST, "/v1/generate"):
                    return try await generate(request)
                case (.POST, "/v1/shard/step"):
                    guard let shard else { throw APIError(.notFound, .notFound, "this node serves whole requests, not pipeline steps") }
                    return .full(status: 200, headers: [("content-type", "application/octet-stream")], body: try await shard.step(request.body))
                case (.POST, "/v1/shard/open"):
                    guard let shard else { throw APIError(.notFound, .notFound, "this node serves whole requests, not pipeline steps") }
                    guard let header = request.header(Envelope.header) else { throw APIError(.unauthorized, .badSignature, "missing \(Envelope.header)") }
                    let envelope: Envelope
                    do { envelope = try Envelope(hex: header) } catch { throw APIError(.badRequest, .malformed, "malformed envelope") }
                    try await guardian.check(envelope, body: request.body)
                    return .json(Array(try JSONEncoder().encode(try shard.open(envelope, body: request.body))))
                case (.POST, "/v1/shard/close"):
                    guard let shard else { throw APIError(.notFound, .notFound, "this node serves whole requests, not pipeline steps") }
                    return .json(Array(try JSONEncoder().encode(try shard.close(request.body, chainId: chainId))))
                default:
                    throw APIError(.notFound, .notFound, "no route \(request.method) \(request.path.prefix(64))")
                }
            } catch let e as APIError {
                return e.plainResponse
            } catch let e as PlexusError {
                return APIError(e).plainResponse
            } catch {
                return APIError(.internalServerError, .init("internal"), "internal error").plainResponse
            }
        }
        try await server.run { port in
            do {
                try await onListening(port)
                endpoint.withLock { $0 = config.publicURL ?? "http://\(config.host):\(port)" }
            } catch {
                // A node that cannot register must not sit unannounced.
                logger.error("node start failed", metadata: ["error": "\(error)"])
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                exit(1)
            }
        }
    }
}

extension APIError {
    /// The error as the lean server's answer: `{"error": {"code", "message"}}` with its status.
    public var plainResponse: HTTPResponseOut {
        let body = (try? LedgerAPI.encoder.encode(["error": ["code": code.rawValue, "message": message]])).map(Array.init) ?? []
        return .json(body, status: Int(status.code), headers: retryAfter.map { [("retry-after", String($0))] } ?? [])
    }
}

struct HealthView: Codable {
    var status: String
    var problems: [HealthProblem]
    var node: String
    var model: String
    var backend: String
    var inFlight: Int
    var concurrency: Int
    /// Whether its answers can be re-executed bit for bit (the built-in engine).
    var exact: Bool
    /// A shard's layers ("A-B") and the pipeline sequences it holds open.
    var layers: String?
    var openSequences: Int?
    var framePort: Int?
}

import Metrics

enum NodeMetrics {
    static let requests = Counter(label: "plexus_node_requests_total")
    static let tokens = Counter(label: "plexus_node_generated_tokens_total")
    static let steps = Gauge(label: "plexus_node_batch_steps_total")
    static let rows = Gauge(label: "plexus_node_batch_rows_total")
    static let peak = Gauge(label: "plexus_node_batch_peak_sequences")
    static let cachedTokens = Gauge(label: "plexus_node_prefix_cached_tokens_total")
    static let prefixBytes = Gauge(label: "plexus_node_prefix_cache_bytes")
    /// A shard: the engine's time per step (its pass, waiting for and sharing it included),
    /// and the whole request, frame in to frame out.
    static let shardCompute = Metrics.Timer(label: "plexus_shard_step_compute_seconds")
    static let shardStep = Metrics.Timer(label: "plexus_shard_step_seconds")
    static let shardOpen = Gauge(label: "plexus_shard_open_sequences")

    static func record(_ s: BatchScheduler.Stats) {
        steps.record(s.steps)
        rows.record(s.rows)
        peak.record(s.peakSequences)
        cachedTokens.record(s.cachedTokens)
        prefixBytes.record(s.prefixBytes)
    }
}

extension PlexusError.Code {
    /// An envelope or key is past its expiry.
    public static let expired = Self("expired")
    /// A request id was seen before.
    public static let replayed = Self("replayed")
}
