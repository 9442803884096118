import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusWire

/// Execution: one request's attempts over nodes, as a state value that takes events
/// and returns what to do next (swift-cluster-membership's `SWIM.Instance` is the
/// model). Before the first token a failure moves to the next node; after it the
/// next node continues the same sequence from the tokens already sent (exact with
/// the built-in engine). The shell (`Gateway.execute`) performs the directives:
/// node calls, text to the client, the record, statistics.
struct Execution {
    /// What happened (besides the pieces a node streams: see `receive`).
    enum Event {
        /// The node finished; its receipt passed the shape checks (`NodeCaller.answer`). A
        /// pipeline gives one receipt per shard that served (signatures checked).
        case completed([Receipt], finish: String, promptTokens: Int)
        /// The request's record is durable and the node's signature on its receipt holds.
        case recorded(RequestRecord)
        /// The attempt failed at `nowMillis`; `candidates` is the directory's order now.
        case failed(NodeFailure, candidates: [Candidate], nowMillis: UInt64)
        /// The client went away.
        case clientLeft
    }

    /// How an attempt ended, for the node's statistics.
    enum AttemptOutcome: Equatable {
        /// Served to the end, with this many tokens of its own.
        case served(tokens: Int)
        /// Failed; `nodeAtFault` is false when the request itself was refused.
        case failed(nodeAtFault: Bool)
        /// Ended with no verdict on the node (the client left).
        case abandoned
        /// The node was full (every slot it offers taken): no verdict, but route elsewhere for a moment.
        case busy
    }

    /// What the request produced.
    struct Outcome {
        var text: String
        var finish: String
        var promptTokens: Int
        var completionTokens: Int
        var record: RequestRecord
        var attempts: Int
        var lastNode: Address
        /// With redundancy: the copies' request ids, and whether every copy agreed.
        var copies: [Hash256] = []
        var agreed = true
        /// Prompt tokens the last node took from its prefix cache.
        var cachedTokens = 0
    }

    /// What to do next.
    enum Directive {
        /// Call this node with this request (its continuation filled in), as these body bytes.
        case call(Candidate, GenerateRequest, body: [UInt8])
        /// Write this record durably and check the node's signature on its last receipt
        /// (the shell stamps `createdMillis`), then report `.recorded` or `.failed`.
        case record(RequestRecord)
        /// The attempt on this node ended so.
        case endAttempt(Address, AttemptOutcome)
        /// Answer the client: done.
        case finish(Outcome)
        /// Answer the client with this error: done.
        case fail(OpenAIError)
        /// The client is gone: stop, answering nothing.
        case abandon
    }

    private enum Phase { case idle, calling, recording, done }

    let base: GenerateRequest
    /// `base` as the node receives it: the first attempt's body and the transcript's request.
    let baseBody: [UInt8]
    let requestId: Hash256
    let requestor: Address
    let gateway: Address
    let attemptLimit: Int
    let startMillis: UInt64
    /// No new attempt starts once this much time has passed (the policy's timeout, for the whole request).
    let timeoutMillis: UInt64
    var deadlineMillis: UInt64 { startMillis &+ timeoutMillis }
    private let initial: [Candidate]
    private var candidates: [Candidate]
    private var phase = Phase.idle

    private(set) var tokens: [TokenID] = []
    private(set) var text = ""
    private(set) var attempts = 0
    /// An upstream-backed node sent pieces without token ids: no continuation.
    private(set) var opaque = false
    private var tried = Set<Address>()
    private var current: Candidate?
    /// Tokens sent when the current attempt began.
    private var before = 0
    private var receipts: [Receipt] = []
    private var nodes: [Address] = []
    private var shares: [UInt64] = []
    private var lastFailure: NodeFailure?
    private var failures: [RequestRecord.FailedAttempt] = []
    private var finish = "stop"
    private var promptTokens = 0

    /// The spot premium locked at admission: the charge includes it, and so does the record.
    let quote: SpotQuote?

    init(base: GenerateRequest, requestId: Hash256, requestor: Address, gateway: Address, candidates: [Candidate],
         attemptLimit: Int, startMillis: UInt64, timeoutMillis: UInt64, quote: SpotQuote? = nil) {
        self.quote = quote
        self.base = base
        self.baseBody = base.json
        self.requestId = requestId
        self.requestor = requestor
        self.gateway = gateway
        self.initial = candidates
        self.candidates = candidates
        self.attemptLimit = attemptLimit
        self.startMillis = startMillis
        self.timeoutMillis = timeoutMillis
    }

    /// The first attempt.
    mutating func start() -> [Directive] {
        guard phase == .idle, attempts == 0 else { return [] }
        return next(nowMillis: startMillis)
    }

    /// The node in flight streamed a piece: its token (none, or negative, from a node
    /// fronting an upstream server: such output cannot be continued elsewhere) and text.
    /// Returns the text to send the client, if any. (One call per token: the hot path,
    /// so it answers with the one thing a piece can ask for instead of a directive list.)
    mutating func receive(token: TokenID?, text piece: String) -> String? {
        guard phase == .calling else { return nil }
        if let t = token {
            tokens.append(t)
            if t < 0 { opaque = true }
        }
        text += piece
        return piece.isEmpty ? nil : piece
    }

    mutating func on(_ event: Event) -> [Directive] {
        switch (phase, event) {
        case let (.calling, .completed(signed, finish, promptTokens)):
            guard let c = current, !signed.isEmpty else { return [] }
            // The node-signed receipt is what must be durable before answering; the
            // countersignature, a function of it and the gateway key, is made when the
            // receipt is next needed (settlement, or a look-up).
            let all = receipts + signed.map { receipt in
                var r = receipt
                r.gateway = gateway
                r.gatewaySignature = .empty
                return r
            }
            guard let asks = try? all.reduce(Amount.zero, { try $0.adding(try $1.cost()) }),
                  let charge = try? asks.adding(try SpotPrice.premiumCost(all, premium: quote?.premium ?? 0).amount) else {
                phase = .done
                return [.endAttempt(c.node.nodeKey, .abandoned),
                        .fail(OpenAIError(500, "api_error", "internal_error", "The request's charge overflows."))]
            }
            self.finish = finish
            self.promptTokens = promptTokens
            phase = .recording
            return [.record(RequestRecord(requestId: requestId, requestor: requestor, model: base.model, nodes: nodes + [c.node.nodeKey],
                                          outputTokens: shares + [UInt64(tokens.count - before)], receipts: all, charge: charge,
                                          state: "unsettled", reason: nil, createdMillis: 0, quote: quote,
                                          transcript: RecordedTranscript(request: baseBody, outputTokens: tokens, finish: finish),
                                          failures: failures))]
        case let (.recording, .recorded(record)):
            guard let c = current else { return [] }
            receipts = record.receipts
            nodes = record.nodes
            shares = record.outputTokens
            phase = .done
            return [.endAttempt(c.node.nodeKey, .served(tokens: tokens.count - before)),
                    .finish(Outcome(text: text, finish: finish, promptTokens: promptTokens, completionTokens: tokens.count,
                                    record: record, attempts: attempts, lastNode: c.node.nodeKey))]
        case let (.calling, .failed(f, fresh, now)), let (.recording, .failed(f, fresh, now)):
            guard let c = current else { return [] }
            current = nil
            var out: [Directive] = [.endAttempt(c.node.nodeKey, f.busy ? .busy : .failed(nodeAtFault: f.retryable))]
            if tokens.count > before {
                nodes.append(c.node.nodeKey)
                shares.append(UInt64(tokens.count - before))
            }
            if failures.count < 64 {
                let why = f.busy ? "busy (\(f.status)): \(f.message)" : "\(f.code) (\(f.status)): \(f.message)"
                failures.append(.init(node: c.node.nodeKey, outputTokens: UInt64(tokens.count - before),
                                      reason: String(why.prefix(RequestRecord.FailedAttempt.maxReason))))
            }
            guard f.retryable else {
                phase = .done
                return out + [.fail(OpenAIError(f.status, f.status == 400 ? "invalid_request_error" : "api_error", f.code, f.message))]
            }
            lastFailure = f
            candidates = fresh + initial.filter { !tried.contains($0.node.nodeKey) }
            out += next(nowMillis: now)
            return out
        case (.calling, .clientLeft), (.recording, .clientLeft):
            phase = .done
            guard let c = current else { return [.abandon] }
            current = nil
            return [.endAttempt(c.node.nodeKey, .abandoned), .abandon]
        default:
            return []
        }
    }

    /// The next attempt, or the error that ends the request.
    private mutating func next(nowMillis: UInt64) -> [Directive] {
        var why = lastFailure?.message ?? "no node left to try"
        if nowMillis >= deadlineMillis {
            why = "the request's timeout of \(timeoutMillis) ms ran out"
        } else if !opaque, attempts < attemptLimit, let c = candidates.first(where: { !tried.contains($0.node.nodeKey) }) {
            tried.insert(c.node.nodeKey)
            attempts += 1
            var gen = base
            gen.continuation = tokens
            before = tokens.count
            current = c
            phase = .calling
            return [.call(c, gen, body: tokens.isEmpty ? baseBody : gen.json)]
        }
        phase = .done
        if tokens.isEmpty {
            return [.fail(OpenAIError(503, "service_unavailable", "no_node_available", "Every node failed: \(why)", retryAfter: 1))]
        }
        if opaque {
            return [.fail(OpenAIError(502, "api_error", "stream_interrupted", "The answer was interrupted after \(tokens.count) pieces; its node fronts an upstream server, whose output no other node can continue: \(why)"))]
        }
        return [.fail(OpenAIError(502, "api_error", "stream_interrupted", "The answer was interrupted after \(tokens.count) tokens and no node could continue it: \(why)"))]
    }
}
