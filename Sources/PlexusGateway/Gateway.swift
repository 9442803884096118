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

    public init(ledgerURL: String, key: KeyPair, dataDirectory: String) {
        self.ledgerURL = ledgerURL
        self.key = key
        self.dataDirectory = dataDirectory
    }

    public var apiKeysPath: String { dataDirectory + "/api-keys.json" }
    public var receiptsPath: String { dataDirectory + "/receipts.sqlite" }
}

/// Escrow reserved by requests in flight and charged but not yet settled.
final class EscrowBook: @unchecked Sendable {
    // Invariant: mutable state only under `lock`.
    private let lock = NSLock()
    private var reserved: [Address: UInt64] = [:]
    private var unsettled: [Address: UInt64] = [:]
    private var cache: [Address: (escrow: UInt64, at: UInt64)] = [:]

    init(unsettled: [Address: UInt64]) { self.unsettled = unsettled }

    func cached(_ a: Address, now: UInt64) -> UInt64? {
        lock.withLock { cache[a].flatMap { now < $0.at + 1_000 ? $0.escrow : nil } }
    }

    func remember(_ a: Address, escrow: UInt64, now: UInt64) { lock.withLock { cache[a] = (escrow, now) } }

    /// Reserves `amount` if the escrow not already committed covers it.
    func reserve(_ a: Address, _ amount: UInt64, escrow: UInt64) -> Bool {
        lock.withLock {
            let used = (reserved[a] ?? 0) &+ (unsettled[a] ?? 0)
            guard used <= escrow, amount <= escrow - used else { return false }
            reserved[a, default: 0] += amount
            return true
        }
    }

    /// Ends a reservation, recording `charge` as unsettled.
    func release(_ a: Address, _ amount: UInt64, charge: UInt64) {
        lock.withLock {
            reserved[a] = (reserved[a] ?? amount) - amount
            if charge > 0 { unsettled[a, default: 0] += charge }
        }
    }

    /// A charge reached the ledger (or was refused): it no longer counts here.
    func settled(_ a: Address, _ charge: UInt64) {
        lock.withLock {
            unsettled[a] = (unsettled[a] ?? 0) >= charge ? unsettled[a]! - charge : 0
            cache[a] = nil
        }
    }
}

/// A node's answer stream failed.
struct NodeFailure: Error {
    var status: Int
    var code: String
    var message: String
    /// Whether another node may be tried (the node's fault, not the request's).
    var retryable: Bool
}

/// What a served request produced.
struct ServeResult {
    var text: String
    var finish: String
    var promptTokens: Int
    var completionTokens: Int
    var record: RequestRecord
    var attempts: Int
    var lastNode: Address
}

/// The gateway's core: admission, routing, failover, metering and settlement.
public final class Gateway: Sendable {
    public let config: GatewayConfig
    let ledger: LedgerClient
    let directory: NodeDirectory
    let store: ReceiptStore
    let escrow: EscrowBook
    let keys: APIKeys
    let keyCache: APIKeyCache
    let http: HTTPClient
    let plain = PlainHTTPClient()
    /// Node receipts arriving together are verified together.
    let signatures = SignatureBatcher(later: SignatureBatcher.onEventLoop)
    let logger: Logger
    let chainId: String
    /// Request ids: SHA-256 of a secret drawn at start, a counter and the gateway key
    /// (unique, and unpredictable to others, without a system call per request).
    private let idSeed: [UInt8]
    private let idCounter = Atomic<UInt64>(0)
    /// Requests anywhere in the server, from their arrival until their answer is handed over
    /// (counted by `GatewayServer`): 1 while a request is served alone.
    let active = Atomic<Int>(0)
    /// Requests this process may have submitted before without learning the outcome (found
    /// unsettled at start, or in a round that failed): looked up before they are sent again.
    private let recovered: Mutex<Set<Hash256>>

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
        recovered = Mutex(Set(unsettled.map(\.requestId)))
        keys = APIKeys(path: config.apiKeysPath)
        keyCache = APIKeyCache(keys)
        var hc = HTTPClient.Configuration()
        hc.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: hc)
        chainId = try await ledger.status().chainId
        try await directory.refresh()
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

    func account(forAuthorization header: String?) throws -> Address {
        guard let header, header.hasPrefix("Bearer ") else {
            throw OpenAIError(401, "invalid_request_error", "invalid_api_key", "Missing API key: send 'Authorization: Bearer <key>'.")
        }
        // Spaces and tabs around the key are ignored (trimmed by hand: Foundation's trimming is slow).
        var key = header.utf8.dropFirst(7)
        while let c = key.first, c == 0x20 || c == 0x09 { key.removeFirst() }
        while let c = key.last, c == 0x20 || c == 0x09 { key.removeLast() }
        guard let account = try keyCache.account(forKeyHash: Hash256.of(Array(key)).hex) else {
            throw OpenAIError(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
        }
        return account
    }

    func escrow(of a: Address) async throws -> UInt64 {
        let now = SystemClock().nowMillis()
        if let e = escrow.cached(a, now: now) { return e }
        let e = try await ledger.account(a).escrow.units
        escrow.remember(a, escrow: e, now: now)
        return e
    }

    /// Validates and serves one request, calling `emit` with each text piece.
    func serve(_ req: ChatRequest, chat: Bool, requestor: Address, requestId: Hash256,
               emit: @escaping @Sendable (String) async throws -> Void) async throws -> ServeResult {
        guard let card = directory.model(req.model) else {
            throw OpenAIError(404, "invalid_request_error", "model_not_found", "The model '\(req.model.prefix(100))' does not exist.")
        }
        if let n = req.n, n != 1 { throw OpenAIError.invalid("n must be 1: this gateway returns one choice per request", code: "unsupported_parameter") }
        let maxTokens = req.maxCompletionTokens ?? req.maxTokens ?? config.defaultMaxTokens
        guard (1...Int(card.contextLength)).contains(maxTokens) else {
            throw OpenAIError.invalid("max_tokens must be 1...\(card.contextLength)", code: "invalid_value")
        }
        let temperature = req.temperature ?? 1
        guard (0...2).contains(temperature) else { throw OpenAIError.invalid("temperature must be 0...2", code: "invalid_value") }
        let topP = req.topP ?? 1
        guard topP > 0, topP <= 1 else { throw OpenAIError.invalid("top_p must be in (0, 1]", code: "invalid_value") }
        if let stop = req.stop, stop.count > 4 || stop.contains(where: { $0.isEmpty || $0.utf8.count > 256 }) {
            throw OpenAIError.invalid("stop takes up to 4 non-empty strings", code: "invalid_value")
        }
        var policy = config.defaultPolicy
        if let p = req.plexus {
            do { try p.validate() } catch let e as PlexusError { throw OpenAIError.invalid(e.message, code: "invalid_value") }
            policy.sort = p.sort ?? policy.sort
            policy.maxPrice = p.maxPrice ?? policy.maxPrice
            policy.minReputation = p.minReputation ?? policy.minReputation
            policy.privacy = p.privacy ?? policy.privacy
            policy.allow = p.allow ?? policy.allow
            policy.deny = p.deny ?? policy.deny
            policy.timeoutMs = p.timeoutMs ?? policy.timeoutMs
        }
        var gen = GenerateRequest(model: req.model, maxTokens: maxTokens, temperature: temperature, topP: topP,
                                  seed: UInt64(bitPattern: req.seed ?? 0), stop: req.stop ?? [])
        let inputBound: Int
        if chat {
            guard let messages = req.messages, !messages.isEmpty else { throw OpenAIError.invalid("messages must be a non-empty array", code: "invalid_value") }
            gen.messages = messages.map { ChatMessage(role: $0.role, content: $0.content) }
            inputBound = messages.reduce(16) { $0 + $1.content.utf8.count + $1.role.utf8.count + 8 }
        } else {
            guard let prompt = req.prompt, !prompt.isEmpty else { throw OpenAIError.invalid("prompt must be a non-empty string", code: "invalid_value") }
            gen.prompt = prompt
            inputBound = prompt.utf8.count + 1
        }
        // Byte-level BPE never makes more tokens than bytes (plus the template's own).
        guard inputBound < 4 * Int(card.contextLength) + 64 else {
            throw OpenAIError.invalid("The prompt exceeds the model's context of \(card.contextLength) tokens.", code: "context_length_exceeded")
        }
        let now = SystemClock().nowMillis()
        var candidates = directory.candidates(model: req.model, policy: policy, now: now)
        if candidates.isEmpty {
            try? await directory.refresh()
            candidates = directory.candidates(model: req.model, policy: policy, now: now)
        }
        guard !candidates.isEmpty else {
            throw OpenAIError(503, "service_unavailable", "no_node_available", "No node can serve '\(req.model)' under this policy right now.", retryAfter: 1)
        }
        // Reserve the most the request could cost (a failover re-reads the prompt).
        var reserve: UInt64 = 0
        for c in candidates.prefix(config.attemptLimit) {
            let worst = try Pricing.cost(inputTokens: UInt64(2 * inputBound + maxTokens), outputTokens: UInt64(maxTokens),
                                         priceIn: c.offer.priceIn, priceOut: c.offer.priceOut)
            reserve = max(reserve, worst.units)
        }
        let available = try await escrow(of: requestor)
        guard escrow.reserve(requestor, reserve, escrow: available) else {
            throw OpenAIError(402, "insufficient_quota", "insufficient_escrow",
                              "The requestor's escrow cannot cover this request (up to \(Amount(units: reserve)); deposit more).")
        }
        var charge: UInt64 = 0
        defer { escrow.release(requestor, reserve, charge: charge) }
        let result = try await run(gen, candidates: candidates, policy: policy, requestor: requestor, requestId: requestId, emit: emit)
        charge = result.record.charge.units
        return result
    }

    /// Tries nodes in order; before the first token a failure moves to the next
    /// node, after it the next node continues from the tokens already sent.
    private func run(_ base: GenerateRequest, candidates initial: [Candidate], policy: RoutingPolicy, requestor: Address, requestId: Hash256,
                     emit: @escaping @Sendable (String) async throws -> Void) async throws -> ServeResult {
        var tokens: [TokenID] = []
        var opaque = false  // an upstream-backed node sent pieces without token ids: no continuation
        var text = ""
        var receipts: [Receipt] = []
        var nodes: [Address] = [], shares: [UInt64] = []
        var tried = Set<Address>()
        var attempts = 0
        var lastFailure: NodeFailure?
        var candidates = initial
        while true {
            guard !opaque, let c = candidates.first(where: { !tried.contains($0.node.nodeKey) }), attempts < config.attemptLimit else { break }
            tried.insert(c.node.nodeKey)
            attempts += 1
            var gen = base
            gen.continuation = tokens
            let before = tokens.count
            directory.begin(c.node.nodeKey)
            let started = DispatchTime.now().uptimeNanoseconds
            var firstAt: UInt64?
            do {
                let (receipt, finish, promptTokens) = try await call(c, gen, requestor: requestor, requestId: requestId, policy: policy) { event in
                    if let t = event.token {
                        tokens.append(t)
                        if t < 0 { opaque = true }
                    }
                    if firstAt == nil { firstAt = DispatchTime.now().uptimeNanoseconds }
                    let piece = event.text ?? ""
                    text += piece
                    if !piece.isEmpty { try await emit(piece) }
                }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                // The node-signed receipt is what must be on disk before answering; the
                // countersignature, a function of it and the gateway key, is made when the
                // receipt is next needed (settlement, or a look-up): see `countersigned`.
                var r = receipt
                r.gateway = config.key.address
                r.gatewaySignature = .empty
                let charge = try (receipts + [r]).reduce(Amount.zero) { try $0.adding(try $1.cost()) }
                let record = RequestRecord(requestId: requestId, requestor: requestor, model: base.model, nodes: nodes + [c.node.nodeKey],
                                           outputTokens: shares + [UInt64(tokens.count - before)], receipts: receipts + [r], charge: charge,
                                           state: "unsettled", reason: nil, createdMillis: SystemClock().nowMillis())
                // The record goes to disk while the node's signature is checked; a receipt
                // that fails is withdrawn before anything is answered, and the node is failed.
                let signing = r.nodeSigningBytes(chainId: chainId)
                let valid: Bool, saving: ReceiptStore.SaveTicket
                if active.load(ordering: .relaxed) == 1 {
                    // A lone request: the record is written and synced on this thread (no
                    // hand-over to the journal's writer and back) while another checks the signature.
                    let signatures = self.signatures, signed = r
                    let check = Background { signatures.verifyNow(signed.nodeSignature, by: signed.node, over: signing) }
                    saving = try store.beginSave(record, inline: true)
                    valid = check.wait()
                } else {
                    saving = try store.beginSave(record)
                    valid = await signatures.verify(r.nodeSignature, by: r.node, over: signing)
                }
                try await saving.wait()
                guard valid else {
                    store.discard(requestId)
                    throw NodeFailure(status: 502, code: "bad_receipt", message: "node \(c.node.nodeKey.short) sent an invalid receipt", retryable: true)
                }
                directory.end(c.node.nodeKey, ok: true, ttftMillis: firstAt.map { Double($0 - started) / 1e6 },
                              tokensPerSecond: elapsed > 0 ? Double(tokens.count - before) / elapsed : nil)
                receipts = record.receipts
                nodes = record.nodes
                shares = record.outputTokens
                GatewayMetrics.requests.increment()
                return ServeResult(text: text, finish: finish, promptTokens: promptTokens, completionTokens: tokens.count,
                                   record: record, attempts: attempts, lastNode: c.node.nodeKey)
            } catch let f as NodeFailure {
                directory.end(c.node.nodeKey, ok: !f.retryable, ttftMillis: nil, tokensPerSecond: nil)
                if tokens.count > before {
                    nodes.append(c.node.nodeKey)
                    shares.append(UInt64(tokens.count - before))
                }
                guard f.retryable else {
                    throw OpenAIError(f.status, f.status == 400 ? "invalid_request_error" : "api_error", f.code, f.message)
                }
                GatewayMetrics.failovers.increment()
                lastFailure = f
                logger.info("node failed, trying another", metadata: ["node": "\(c.node.nodeKey.short)", "error": "\(f.message)", "tokens": "\(tokens.count)"])
                candidates = directory.candidates(model: base.model, policy: policy, now: SystemClock().nowMillis())
                    + initial.filter { !tried.contains($0.node.nodeKey) }
            }
        }
        let why = lastFailure?.message ?? "no node left to try"
        if tokens.isEmpty {
            throw OpenAIError(503, "service_unavailable", "no_node_available", "Every node failed: \(why)", retryAfter: 1)
        }
        if opaque {
            throw OpenAIError(502, "api_error", "stream_interrupted", "The answer was interrupted after \(tokens.count) pieces; its node fronts an upstream server, whose output no other node can continue: \(why)")
        }
        throw OpenAIError(502, "api_error", "stream_interrupted", "The answer was interrupted after \(tokens.count) tokens and no node could continue it: \(why)")
    }

    /// One attempt on one node: streams its events to `onEvent` and returns its receipt.
    private func call(_ c: Candidate, _ gen: GenerateRequest, requestor: Address, requestId: Hash256, policy: RoutingPolicy,
                      onEvent: (NodeEvent) async throws -> Void) async throws -> (Receipt, String, Int) {
        let body = gen.json
        let timeout = Int64(policy.timeoutMs ?? 120_000)
        var env = Envelope(requestId: requestId, requestor: requestor, gateway: config.key.address, node: c.node.nodeKey,
                           bodyHash: Hash256.of(Array(body)), expiresAtMillis: SystemClock().nowMillis() + UInt64(timeout) + 5_000)
        env.sign(config.key, chainId: chainId)
        if let target = PlainHTTPClient.Target(url: c.node.endpoint) {
            // Plain HTTP: pooled connections of our own.
            do {
                return try await plain.post(target, path: "/v1/generate", headers: [("content-type", "application/json"), (Envelope.header, env.hex)],
                                            body: body, timeout: .milliseconds(timeout)) { response in
                    var source = PipeSource(pipe: response.body)
                    return try await answer(status: response.status, &source, c, gen, requestId: requestId, onEvent: onEvent)
                }
            } catch let f as NodeFailure {
                throw f
            } catch let e as OpenAIError {
                throw e
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw NodeFailure(status: 503, code: "node_unreachable", message: "\(error)", retryable: true)
            }
        }
        var hr = HTTPClientRequest(url: c.node.endpoint + "/v1/generate")
        hr.method = .POST
        hr.headers.add(name: "content-type", value: "application/json")
        hr.headers.add(name: Envelope.header, value: env.hex)
        hr.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(hr, timeout: .milliseconds(timeout))
        } catch {
            throw NodeFailure(status: 503, code: "node_unreachable", message: "\(error)", retryable: true)
        }
        var source = ClientSource(iterator: response.body.makeAsyncIterator())
        return try await answer(status: Int(response.status.code), &source, c, gen, requestId: requestId, onEvent: onEvent)
    }

    /// Reads a node's answer: its error, or its events up to the receipt.
    private func answer<S: BodySource>(status: Int, _ source: inout S, _ c: Candidate, _ gen: GenerateRequest, requestId: Hash256,
                                       onEvent: (NodeEvent) async throws -> Void) async throws -> (Receipt, String, Int) {
        guard status == 200 else {
            var bytes: [UInt8] = []
            while bytes.count < 64 * 1024, let piece = try? await source.next() { bytes += piece }
            let e = try? JSONDecoder().decode(NodeErrorBody.self, from: Data(bytes))
            let code = e?.error.code ?? "node_error", message = e?.error.message ?? "node answered \(status)"
            // The request's own faults go back to the client; the rest try another node.
            let clientFault = status == 400 && ["out_of_range", "malformed", "unsupported"].contains(code)
            throw NodeFailure(status: clientFault ? 400 : 503, code: clientFault ? (code == "out_of_range" ? "context_length_exceeded" : code) : code,
                              message: message, retryable: !clientFault)
        }
        var buffer: [UInt8] = []
        do {
            while let chunk = try await source.next() {
                buffer += chunk
                var start = 0
                defer { if start > 0 { buffer.removeFirst(start) } }
                while let end = Self.eventEnd(buffer, from: start) {
                    let line = buffer[start..<end]
                    start = end + 2
                    guard line.starts(with: Self.dataPrefix) else { continue }
                    let payload = line.dropFirst(6)
                    let event: NodeEvent
                    if let (t, text) = FastJSON.parseTokenEvent(payload) {
                        event = .token(t, text)
                    } else if let done = FastJSON.parseDoneEvent(payload) {
                        event = NodeEvent(type: "done", finishReason: done.finish, promptTokens: done.promptTokens, receipt: done.receipt)
                    } else {
                        event = try JSONDecoder().decode(NodeEvent.self, from: Data(payload))
                    }
                    switch event.type {
                    case "token", "text": try await onEvent(event)
                    case "done":
                        // The node's signature is checked by the caller, while the record is being written.
                        guard let receipt = event.receipt, receipt.node == c.node.nodeKey, receipt.requestId == requestId,
                              receipt.priceIn <= c.offer.priceIn, receipt.priceOut <= c.offer.priceOut,
                              receipt.firstOutputToken == UInt64(gen.continuation.count) else {
                            throw NodeFailure(status: 502, code: "bad_receipt", message: "node \(c.node.nodeKey.short) sent an invalid receipt", retryable: true)
                        }
                        return (receipt, event.finishReason ?? "stop", event.promptTokens ?? Int(receipt.inputTokens))
                    default:
                        let code = event.code ?? "node_error"
                        let clientFault = ["out_of_range", "malformed", "unsupported"].contains(code)
                        throw NodeFailure(status: clientFault ? 400 : 502, code: code == "out_of_range" ? "context_length_exceeded" : code,
                                          message: event.message ?? "node error", retryable: !clientFault)
                    }
                }
            }
        } catch let f as NodeFailure {
            throw f
        } catch let e as OpenAIError {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw NodeFailure(status: 502, code: "node_stream_broken", message: "\(error)", retryable: true)
        }
        throw NodeFailure(status: 502, code: "node_stream_broken", message: "node \(c.node.nodeKey.short) ended its stream without finishing", retryable: true)
    }

    static let dataPrefix = Array("data: ".utf8)

    /// Where the event starting at `from` ends (the first blank line), if it has arrived.
    static func eventEnd(_ b: [UInt8], from: Int = 0) -> Int? {
        guard b.count >= from + 2 else { return nil }
        for i in from..<(b.count - 1) where b[i] == 10 && b[i + 1] == 10 { return i }
        return nil
    }

    // MARK: settlement

    /// Submits unsettled receipts in batches, and tracks them to finality.
    /// Each round goes on until nothing is left (up to `settleRounds`
    /// batches), so settlement keeps pace with any request rate.
    func settleOnce() async {
        do {
            for _ in 0..<Self.settleRounds {
                // Records stay "unsettled" until the ledger has answered.
                let batch = store.unsettled(limit: Self.settleBatch)
                if batch.isEmpty { break }
                try await submit(batch)
                if batch.count < Self.settleBatch { break }
            }
            // Pending settlements are looked at once their challenge window has passed, not every round.
            let height = try await ledger.status().height
            for _ in 0..<Self.settleRounds {
                let due = try store.records(state: "pending", dueBy: height, limit: 4 * Self.settleBatch)
                if due.isEmpty { break }
                let now = try await ledger.settlements(due.map(\.requestId))
                var changes: [(id: Hash256, state: String, due: UInt64)] = []
                for r in due {
                    if now[r.requestId]?.status == .final {
                        changes.append((r.requestId, "final", 0))
                    } else {
                        // Not final yet (or unknown for now): look again a little later.
                        changes.append((r.requestId, "pending", now[r.requestId].map { max($0.finalHeight, height + 1) } ?? height + 10))
                    }
                }
                try store.setStates(changes)
                if due.count < 4 * Self.settleBatch { break }
            }
        } catch {
            logger.warning("settlement round failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    static let settleBatch = 2_000
    static let settleRounds = 40

    /// `r` with every receipt countersigned (those saved before countersigning get
    /// it now; Ed25519 signatures are deterministic, so it is the same every time).
    func countersigned(_ r: RequestRecord) -> RequestRecord {
        var r = r
        for i in r.receipts.indices where r.receipts[i].gatewaySignature == .empty {
            r.receipts[i].countersign(config.key, chainId: chainId)
        }
        return r
    }

    /// Sends one batch's receipts to the ledger and records what it made of them.
    private func submit(_ records: [RequestRecord]) async throws {
        var batch = records.map(countersigned)
        // Already settled (a resubmission after a restart or a failed round) is skipped; the
        // ledger's once-only rule would refuse it anyway.
        let doubtful = recovered.withLock { r in batch.map(\.requestId).filter { r.contains($0) } }
        let known = doubtful.isEmpty ? [:] : try await ledger.settlements(doubtful)
        recovered.withLock { r in
            for id in doubtful { r.remove(id) }
            // Until this round's outcome is recorded, a failure leaves these in doubt.
            for x in batch { r.insert(x.requestId) }
        }
        // One transaction per chunk that fits the ledger's `maxTxBytes` (a request's shares stay together).
        let params = try await ledger.params()
        let limit = Int(params.params.first { $0.name == "maxTxBytes" }?.value ?? 16_384) - 512
        var chunks: [[Receipt]] = [], chunk: [Receipt] = [], size = 0
        for r in batch where known[r.requestId] == nil && !r.receipts.isEmpty {
            let bytes = r.receipts.reduce(0) { $0 + $1.canonicalBytes.count }
            if size + bytes > limit, !chunk.isEmpty {
                chunks.append(chunk)
                chunk = []
                size = 0
            }
            chunk += r.receipts
            size += bytes
        }
        if !chunk.isEmpty { chunks.append(chunk) }
        if !chunks.isEmpty {
            // The ledger applies transactions on arrival: the chunks go one after another with
            // consecutive nonces, and only the last waits for its block to be committed (blocks
            // are committed in order, so the earlier ones are then durable too).
            async let statusReq = ledger.status()
            async let accountReq = ledger.account(config.key.address)
            let (status, account) = try await (statusReq, accountReq)
            let fee = Amount(units: params.params.first { $0.name == "minFee" }?.value ?? 0)
            let txs = chunks.enumerated().map { i, c in
                Transaction(chainId: status.chainId, from: config.key, nonce: account.nonce + UInt64(i), fee: fee, body: .settle(receipts: c))
            }
            // In batches (one request each, applied in order) of as many transactions of up to
            // `maxTxBytes` as a request holds; only the last batch waits for its block.
            let perRequest = max(1, min(LedgerAPI.maxBatchTransactions, (LedgerAPI.maxBatchBodyBytes - 1024) / (limit + 512)))
            for start in stride(from: 0, to: txs.count, by: perRequest) {
                let end = min(txs.count, start + perRequest)
                for r in try await ledger.submitAll(Array(txs[start..<end]), waitForCommit: end == txs.count) { _ = try r.get() }
            }
        }
        let after = try await ledger.settlements(batch.map(\.requestId))
        var answered: [(record: RequestRecord, due: UInt64)] = []
        for i in batch.indices {
            if let s = after[batch[i].requestId], s.gateway == config.key.address {
                batch[i].state = s.status.rawValue
                answered.append((batch[i], s.status == .final ? 0 : s.finalHeight))
            } else {
                batch[i].state = "rejected"
                batch[i].reason = "the ledger refused the receipts"
                answered.append((batch[i], 0))
            }
            escrow.settled(batch[i].requestor, batch[i].charge.units)
        }
        try store.archive(answered)
        recovered.withLock { r in for x in batch { r.remove(x.requestId) } }
    }

    func shutdown() async {
        plain.closeIdle()
        try? await http.shutdown()
    }
}

enum GatewayMetrics {
    static let requests = Counter(label: "plexus_gateway_requests_total")
    static let failovers = Counter(label: "plexus_gateway_failovers_total")
    static let errors = Counter(label: "plexus_gateway_errors_total")
}

/// A node's error answer.
struct NodeErrorBody: Decodable {
    struct Inner: Decodable {
        var code: String
        var message: String
    }
    var error: Inner
}

/// A response body read piece by piece.
protocol BodySource {
    mutating func next() async throws -> [UInt8]?
}

struct PipeSource: BodySource {
    let pipe: BytePipe
    mutating func next() async throws -> [UInt8]? { try await pipe.next() }
}

struct ClientSource: BodySource {
    var iterator: HTTPClientResponse.Body.AsyncIterator
    mutating func next() async throws -> [UInt8]? { try await iterator.next().map { Array(buffer: $0) } }
}
