import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusHTTP
import PlexusWire
import Synchronization

/// How a gateway runs.
public struct GatewayConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var ledgerURL: String
    /// The gateway key (registered on the ledger; signs envelopes, receipts and settlement batches).
    public var key: KeyPair
    public var dataDirectory: String
    public var defaultPolicy = RoutingPolicy()
    public var defaultMaxTokens = 256
    public var settleIntervalMillis: UInt64 = 2_000
    public var attemptLimit = 4
    /// What one API key may ask: request rate and requests in flight.
    public var keyLimits = KeyLimits()
    /// How often the gateway probes its nodes and reports what it measured of them to the
    /// ledger (`report_service`); 0: never.
    public var serviceReportMillis: UInt64 = 30_000

    public init(ledgerURL: String, key: KeyPair, dataDirectory: String) {
        self.ledgerURL = ledgerURL
        self.key = key
        self.dataDirectory = dataDirectory
    }

    public var apiKeysPath: String { dataDirectory + "/api-keys.json" }
    public var receiptsPath: String { dataDirectory + "/receipts.sqlite" }
}

/// The gateway's core: the request path's stages put together — admission
/// (`Admission`), routing (`Routing`, `NodeDirectory`), pricing and reservation
/// (`Reservation`, `EscrowBook`), execution (`Execution`, performed here over
/// `NodeCaller`), recording (`Recorder`) — and settlement (`Settler`).
public final class Gateway: Sendable {
    public let config: GatewayConfig
    let ledger: LedgerClient
    let directory: NodeDirectory
    let store: ReceiptStore
    let escrow: EscrowBook
    let keys: APIKeys
    let keyCache: APIKeyCache
    let nodes: NodeCaller
    let pipelines: PipelineCaller
    let recorder: Recorder
    let settler: Settler
    let limiter: RateLimiter<Hash256>
    /// Agents' grants as last read, with when (a second's staleness at most).
    let agentCache = Mutex<[Address: (AgentView?, UInt64)]>([:])
    /// Models' spot premiums as last read (premium, height), with when.
    let spotCache = Mutex<[String: ((premium: UInt64, height: UInt64), UInt64)]>([:])
    let evaluationCache = Mutex<[String: ([Evaluation], UInt64)]>([:])
    /// What was measured of the nodes since the last service report.
    let meter = ServiceMeter()
    /// One transaction from the gateway key at a time (settlement batches, reports, challenges).
    let sending = AsyncLock()
    let logger: Logger
    let chainId: String
    /// Request ids: SHA-256 of a secret drawn at start, a counter and the gateway key
    /// (unique, and unpredictable to others, without a system call per request).
    private let idSeed: [UInt8]
    private let idCounter = Atomic<UInt64>(0)
    /// Requests anywhere in the server, from their arrival until their answer is handed over
    /// (counted by `GatewayServer`): 1 while a request is served alone.
    let active = Atomic<Int>(0)

    public init(config: GatewayConfig, logger: Logger) async throws {
        try FileManager.default.createDirectory(atPath: config.dataDirectory, withIntermediateDirectories: true)
        self.config = config
        self.logger = logger
        var rng = SystemRandomNumberGenerator()
        idSeed = (0..<4).flatMap { _ in withUnsafeBytes(of: rng.next() as UInt64) { Array($0) } }
        ledger = LedgerClient(baseURL: config.ledgerURL)
        directory = NodeDirectory(ledger: ledger)
        store = try ReceiptStore(path: config.receiptsPath)
        // What was not settled before a restart: still owed, and perhaps already sent.
        let unsettled = store.unsettled(limit: .max)
        escrow = EscrowBook(unsettled: unsettled.reduce(into: [:]) { $0[$1.requestor, default: 0] += $1.charge.units })
        keys = APIKeys(path: config.apiKeysPath)
        keyCache = APIKeyCache(keys)
        var hc = HTTPClient.Configuration()
        hc.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let chainId = try await ledger.status().chainId
        self.chainId = chainId
        nodes = NodeCaller(key: config.key, chainId: chainId, plain: PlainHTTPClient(),
                           http: HTTPClient(eventLoopGroupProvider: .singleton, configuration: hc))
        pipelines = PipelineCaller(nodes: nodes, directory: directory, frames: FrameClient())
        recorder = Recorder(store: store, chainId: chainId)
        settler = Settler(key: config.key, chainId: chainId, ledger: ledger, store: store, escrow: escrow,
                          recovered: Set(unsettled.map(\.requestId)), sending: sending, logger: logger)
        limiter = RateLimiter(limits: config.keyLimits)
        try await directory.refresh()
    }

    /// Probes the nodes and reports what was measured of them every `serviceReportMillis` (see `ServiceReporter`).
    func reportService() async {
        let ledger = ledger, key = config.key, sending = sending, logger = logger
        await ServiceReporter(ledger: ledger, meter: meter, everyMillis: config.serviceReportMillis,
                              owner: { try? await ledger.gateways().first { $0.key == key.address }?.owner },
                              send: { body in
                                  _ = try await sending.withLock { try await ledger.send(body, from: key) }
                                  GatewayMetrics.serviceReports.increment()
                              },
                              refused: { n, error in logger.info("service report refused", metadata: ["samples": "\(n)", "error": "\(error)"]) }).run()
    }

    /// Registers the gateway key under `owner` if it is not yet registered.
    public static func register(key: KeyPair, owner: KeyPair, ledger: LedgerClient) async throws {
        if try await ledger.gateways().contains(where: { $0.key == key.address }) { return }
        let chain = try await ledger.status().chainId
        let proof = key.sign(Registry.gatewayKeyProofBytes(chainId: chain, owner: owner.address))
        _ = try await ledger.send(.registerGateway(key: key.address, keyProof: proof), from: owner)
    }

    func newRequestId() -> Hash256 {
        let n = idCounter.add(1, ordering: .relaxed).newValue
        return Hash256.of(idSeed + withUnsafeBytes(of: n.bigEndian) { Array($0) } + config.key.address.bytes)
    }

    func account(forAuthorization header: String?) throws -> Address { try caller(forAuthorization: header).account }

    /// The paying account of an API key, and the key's hash (what the per-key limits count).
    func caller(forAuthorization header: String?) throws -> (account: Address, key: Hash256) {
        guard let header, header.hasPrefix("Bearer ") else {
            throw OpenAIError(401, "invalid_request_error", "invalid_api_key", "Missing API key: send 'Authorization: Bearer <key>'.")
        }
        // Spaces and tabs around the key are ignored (trimmed by hand: Foundation's trimming is slow).
        var key = header.utf8.dropFirst(7)
        while let c = key.first, c == 0x20 || c == 0x09 { key.removeFirst() }
        while let c = key.last, c == 0x20 || c == 0x09 { key.removeLast() }
        let hash = Hash256.of(Array(key))
        guard let account = try keyCache.account(forKeyHash: hash.hex) else {
            throw OpenAIError(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
        }
        return (account, hash)
    }

    /// `a`'s grant as an agent (nil: not an agent), read from the ledger at most a second ago.
    func agentView(_ a: Address) async throws -> AgentView? {
        let now = SystemClock().nowMillis()
        if let (view, at) = agentCache.withLock({ $0[a] }), now < at + 1_000 { return view }
        let view = try await ledger.agent(a)
        agentCache.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[a] = (view, now)
        }
        return view
    }

    /// `model`'s spot premium (base units per million tokens) and the height it was read at,
    /// from the ledger at most a second ago: what a request admitted now is quoted.
    func spotPremium(_ model: String) async throws -> (premium: UInt64, height: UInt64) {
        let now = SystemClock().nowMillis()
        if let (q, at) = spotCache.withLock({ $0[model] }), now < at + 1_000 { return q }
        guard let view = try await ledger.marketPrices(model: model).first else { return (0, 0) }
        let q = (view.premium, view.height)
        spotCache.withLock { cache in
            if cache.count > 1_024 { cache.removeAll() }
            cache[model] = (q, now)
        }
        return q
    }

    /// The policy's demands on the model itself: uses its licence must allow, a least measured quality.
    func checkModel(_ model: String, policy: RoutingPolicy) async throws {
        if let wanted = policy.license, let card = directory.model(model) {
            let allowed = Licenses.uses(card.license)
            let missing = wanted.filter { Licenses.Use(rawValue: $0).map { !allowed.contains($0) } ?? true }
            guard missing.isEmpty else {
                throw OpenAIError(403, "permission_error", "license_not_allowed",
                                  "Model '\(model)' is licensed '\(card.license)', which does not allow \(missing.joined(separator: ", ")) use.")
            }
        }
        if let least = policy.minQuality {
            let best = try await evaluations(model).map { Double($0.scoreBps) / 10_000 }.max()
            guard let best, best >= least else {
                throw OpenAIError(403, "permission_error", "quality_not_met",
                                  best.map { "Model '\(model)' scores \($0) at best on its recorded evaluations, below min_quality \(least)." }
                                  ?? "Model '\(model)' has no recorded evaluation to meet min_quality \(least).")
            }
        }
    }

    /// `model`'s evaluations on the ledger, read at most five seconds ago.
    func evaluations(_ model: String) async throws -> [Evaluation] {
        let now = SystemClock().nowMillis()
        if let (list, at) = evaluationCache.withLock({ $0[model] }), now < at + 5_000 { return list }
        let list = try await ledger.evaluations(model)
        evaluationCache.withLock { cache in
            if cache.count > 1_024 { cache.removeAll() }
            cache[model] = (list, now)
        }
        return list
    }

    /// The answer to a request an agent's policy refuses.
    static func agentError(_ e: PlexusError) -> OpenAIError {
        switch e.code {
        case .agentPrice:
            OpenAIError(402, "insufficient_quota", "agent_price_exceeded", "\(e.message); the request's worst case counts (lower max_tokens).")
        case .agentBudget: OpenAIError(402, "insufficient_quota", "agent_budget_exceeded", e.message)
        case .agentModel: OpenAIError(403, "permission_error", "model_not_allowed", e.message)
        default: OpenAIError(403, "permission_error", "agent_revoked", e.message)
        }
    }

    func escrow(of a: Address) async throws -> UInt64 {
        let now = SystemClock().nowMillis()
        if let e = escrow.cached(a, now: now) { return e }
        let e = try await ledger.account(a).escrow.units
        escrow.remember(a, escrow: e, now: now)
        return e
    }

    var admissionDefaults: Admission.Defaults { Admission.Defaults(policy: config.defaultPolicy, maxTokens: config.defaultMaxTokens) }

    /// Admits, routes, reserves and executes one request, calling `emit` with each text piece.
    func serve(_ req: ChatRequest, chat: Bool, requestor: Address, requestId: Hash256,
               emit: @escaping @Sendable (Emitted) async throws -> Void) async throws -> Execution.Outcome {
        let admitted = try Admission.admit(req, chat: chat, card: directory.model(req.model), defaults: admissionDefaults)
        try await checkModel(req.model, policy: admitted.policy)
        let now = SystemClock().nowMillis()
        var candidates = directory.candidates(model: req.model, policy: admitted.policy, now: now)
        if candidates.isEmpty {
            try? await directory.refresh()
            candidates = directory.candidates(model: req.model, policy: admitted.policy, now: now)
        }
        // The spot premium, locked now: the price each candidate would charge is its ask plus it,
        // and `max_price` caps that.
        let spot = try await spotPremium(req.model)
        if let maxPrice = admitted.policy.maxPrice, spot.premium > 0 {
            candidates = candidates.filter { Routing.price($0.offer) + 2 * Double(spot.premium) / Double(Amount.unitsPerPLX) <= maxPrice }
        }
        guard !candidates.isEmpty else {
            // Where shards serve the model, say which layers are missing.
            let coverage = directory.coverage(model: req.model)
            let detail = coverage.layers == nil ? "" : " (\(coverage.summary))"
            throw OpenAIError(503, "service_unavailable", "no_node_available", "No node can serve '\(req.model)' under this policy right now\(detail).", retryAfter: 1)
        }
        let k = admitted.policy.redundancy ?? 1
        guard let plan = Redundancy.assign(candidates, copies: k) else {
            throw OpenAIError(503, "service_unavailable", "no_node_available",
                              "Redundancy \(k) needs \(k) node operators that can serve '\(req.model)' under this policy; fewer can now.", retryAfter: 1)
        }
        let (reserve, overflow) = try Reservation.worstCase(candidates, inputBound: admitted.inputBound, maxTokens: admitted.generate.maxTokens,
                                                            attempts: config.attemptLimit, premium: spot.premium).multipliedReportingOverflow(by: UInt64(k))
        guard !overflow else { throw OpenAIError(400, "invalid_request_error", "invalid_value", "The request's worst-case cost overflows.") }
        // An agent's request: its policy first (as the ledger will judge its settlement), then its
        // payer's escrow and its own budget for the period.
        let agent = try await agentView(requestor)
        if let agent {
            let perCopy = Amount(units: reserve / UInt64(k))
            if let refusal = agent.grant.refusal(of: perCopy, model: req.model, at: agent.height), refusal.code != .agentBudget {
                throw Self.agentError(refusal)
            }
        }
        let paying = agent?.grant.payer ?? requestor
        let available = try await escrow(of: paying)
        switch escrow.reserve(paying, reserve, escrow: available, agent: agent?.grant.agent, budget: agent?.remaining.units ?? 0) {
        case nil: break
        case .escrow?:
            throw OpenAIError(402, "insufficient_quota", "insufficient_escrow",
                              "The \(agent == nil ? "requestor's" : "agent's payer's") escrow cannot cover this request (up to \(Amount(units: reserve)); deposit more).")
        case .budget?:
            throw OpenAIError(402, "insufficient_quota", "agent_budget_exceeded",
                              "This agent's budget left for the period (\(agent?.remaining ?? .zero), less requests not yet settled) cannot cover this request (up to \(Amount(units: reserve))).")
        }
        var charge: UInt64 = 0
        defer { escrow.release(paying, reserve, charge: charge, agent: agent?.grant.agent) }
        // The copies run beside the answer the client sees; each is recorded, settled and paid on its own.
        let copies = plan.copies.enumerated().map { j, c in
            let copyId = Redundancy.copyId(requestId, j + 1)
            return Task {
                try? await self.execute(admitted, candidates: [c], requestor: requestor, requestId: copyId,
                                        quote: SpotQuote(requestId: copyId, premium: spot.premium, height: spot.height)) { _ in }
            }
        }
        var outcome: Execution.Outcome
        do {
            outcome = try await execute(admitted, candidates: plan.main, requestor: requestor, requestId: requestId,
                                        quote: SpotQuote(requestId: requestId, premium: spot.premium, height: spot.height), emit: emit)
        } catch {
            for c in copies { c.cancel() }
            for c in copies { charge &+= await c.value?.record.charge.units ?? 0 }
            throw error
        }
        charge = outcome.record.charge.units
        guard !copies.isEmpty else { return outcome }
        var answers = [Self.answer(outcome.record)]
        var ids = [requestId]
        for (j, c) in copies.enumerated() {
            ids.append(Redundancy.copyId(requestId, j + 1))
            guard let r = await c.value else { continue }  // a copy that failed is no evidence either way
            charge &+= r.record.charge.units
            answers.append(Self.answer(r.record))
            outcome.copies.append(ids.last!)
        }
        let suspects = Redundancy.suspects(answers).map { ids[$0] }
        outcome.agreed = suspects.isEmpty
        if !suspects.isEmpty {
            GatewayMetrics.disagreements.increment()
            logger.warning("redundant answers disagree; challenging", metadata: ["request": "\(requestId.hex.prefix(16))", "suspects": "\(suspects.count)"])
            Task { await self.challenge(suspects) }
        }
        return outcome
    }

    static func answer(_ r: RequestRecord) -> Redundancy.Answer {
        Redundancy.Answer(tokens: r.transcript?.outputTokens ?? [], root: r.receipts.count == 1 ? r.receipts[0].commitment?.root : nil)
    }

    /// Challenges each of `ids` once it has settled (within a minute), with the least bond, from the gateway's key.
    func challenge(_ ids: [Hash256]) async {
        let bond = (try? await ledger.params())?.params.first { $0.name == "challengeBondMin" }.map { Amount(units: $0.value) } ?? Amount(units: Amount.unitsPerPLX)
        for id in ids {
            var settled: Settlement?
            for _ in 0..<120 {
                settled = try? await ledger.settlement(id)
                if settled != nil { break }
                try? await Task.sleep(for: .milliseconds(500))
            }
            guard let settled, settled.status == .pending else { continue }
            do {
                _ = try await sending.withLock {
                    try await ledger.send(.challenge(requestId: id, share: UInt8(clamping: settled.nodes.count - 1), bond: bond), from: config.key)
                }
                logger.notice("challenged a redundant answer", metadata: ["request": "\(id.hex.prefix(16))"])
            } catch {
                logger.warning("cannot challenge", metadata: ["request": "\(id.hex.prefix(16))", "error": "\(error)"])
            }
        }
    }

    /// Performs an `Execution`'s directives until it finishes or fails.
    private func execute(_ admitted: AdmittedRequest, candidates: [Candidate], requestor: Address, requestId: Hash256, quote: SpotQuote,
                         emit: @escaping @Sendable (Emitted) async throws -> Void) async throws -> Execution.Outcome {
        let timeout = UInt64(admitted.policy.timeoutMs ?? 120_000)
        var machine = Execution(base: admitted.generate, requestId: requestId, requestor: requestor, gateway: config.key.address,
                                candidates: candidates, attemptLimit: config.attemptLimit, startMillis: SystemClock().nowMillis(),
                                timeoutMillis: timeout, quote: quote)
        var pending = machine.start()[...]
        // The node in flight and when its attempt began and sent its first piece.
        var inFlight: (node: Address, started: UInt64, firstAt: UInt64?)?
        // Log-probabilities of tokens whose text is not out yet (held back for a stop string).
        var logprobs: [LogprobEntry] = []
        var cachedTokens = 0
        // Whatever ends this early (an error of the disk, say) still ends the attempt's load.
        defer { if let n = inFlight { directory.abandon(n.node) } }
        func failed(_ f: NodeFailure, on node: Address) -> [Execution.Directive] {
            if f.retryable {
                GatewayMetrics.failovers.increment()
                logger.info("node failed, trying another", metadata: ["node": "\(node.short)", "error": "\(f.message)", "tokens": "\(machine.tokens.count)"])
            }
            let now = SystemClock().nowMillis()
            return machine.on(.failed(f, candidates: directory.candidates(model: admitted.generate.model, policy: admitted.policy, now: now), nowMillis: now))
        }
        while let directive = pending.popFirst() {
            switch directive {
            case let .call(c, gen, body):
                directory.begin(c.node.nodeKey)
                inFlight = (c.node.nodeKey, DispatchTime.now().uptimeNanoseconds, nil)
                func onEvent(_ event: NodeEvent) async throws {
                    if inFlight?.firstAt == nil {
                        inFlight?.firstAt = DispatchTime.now().uptimeNanoseconds
                        directory.answered(c.node.nodeKey)
                    }
                    if gen.logprobs != nil, let lp = event.logprob, lp.isFinite, lp <= 0 {
                        logprobs.append(LogprobEntry(token: event.tokenText ?? event.text ?? "", logprob: lp, top: event.top ?? []))
                    }
                    if let piece = machine.receive(token: event.token, text: event.text ?? "") {
                        try await emit(Emitted(text: piece, logprobs: logprobs))
                        logprobs = []
                    }
                }
                do {
                    let answer = c.isPipeline
                        ? try await pipelines.call(c, gen, requestor: requestor, requestId: requestId, policy: admitted.policy, onEvent: onEvent)
                        : try await nodes.call(c, gen, body: body, requestor: requestor, requestId: requestId, policy: admitted.policy, onEvent: onEvent)
                    if !logprobs.isEmpty {
                        try await emit(Emitted(text: "", logprobs: logprobs))
                        logprobs = []
                    }
                    cachedTokens = answer.cachedTokens
                    pending += machine.on(.completed(answer.receipts, finish: answer.finish, promptTokens: answer.promptTokens))
                } catch let f as NodeFailure {
                    pending += failed(f, on: c.node.nodeKey)
                } catch is CancellationError {
                    pending += machine.on(.clientLeft)
                }
            case var .record(record):
                record.createdMillis = SystemClock().nowMillis()
                if try await recorder.record(record, alone: active.load(ordering: .relaxed) == 1) {
                    pending += machine.on(.recorded(record))
                } else {
                    let node = inFlight?.node ?? record.nodes.last ?? .treasury
                    pending += failed(NodeFailure(status: 502, code: "bad_receipt", message: "node \(node.short) sent an invalid receipt", retryable: true), on: node)
                }
            case let .endAttempt(node, outcome):
                let timing = inFlight
                inFlight = nil
                switch outcome {
                case let .served(tokens):
                    let now = DispatchTime.now().uptimeNanoseconds
                    let elapsed = Double(now - (timing?.started ?? now)) / 1e9
                    let ttft = timing.flatMap { t in t.firstAt.map { Double($0 - t.started) / 1e6 } }
                    let rate = elapsed > 0 ? Double(tokens) / elapsed : nil
                    directory.end(node, ok: true, ttftMillis: ttft, tokensPerSecond: rate)
                    meter.record(node: node, model: admitted.generate.model, answered: true, ttftMillis: ttft, tokensPerSecond: rate)
                case let .failed(nodeAtFault):
                    directory.end(node, ok: !nodeAtFault, ttftMillis: nil, tokensPerSecond: nil)
                    meter.record(node: node, model: admitted.generate.model, answered: !nodeAtFault)
                case .abandoned:
                    directory.abandon(node)
                case .busy:
                    directory.busy(node)
                }
            case var .finish(outcome):
                GatewayMetrics.requests.increment()
                outcome.cachedTokens = cachedTokens
                return outcome
            case let .fail(error):
                throw error
            case .abandon:
                throw CancellationError()
            }
        }
        throw OpenAIError(500, "api_error", "internal_error", "the request's execution ended without an answer")
    }

    func countersigned(_ r: RequestRecord) -> RequestRecord { settler.countersigned(r) }

    func shutdown() async {
        nodes.plain.closeIdle()
        pipelines.frames.closeIdle()
        try? await nodes.http.shutdown()
    }
}

enum GatewayMetrics {
    static let requests = Counter(label: "plexus_gateway_requests_total")
    static let failovers = Counter(label: "plexus_gateway_failovers_total")
    static let disagreements = Counter(label: "plexus_gateway_redundancy_disagreements_total")
    /// One pipeline step's round trip to a shard, frame out to frame back.
    static let shardExchange = Metrics.Timer(label: "plexus_gateway_shard_exchange_seconds")
    static let errors = Counter(label: "plexus_gateway_errors_total")
    /// `report_service` transactions the ledger took.
    static let serviceReports = Counter(label: "plexus_gateway_service_reports_total")
}
