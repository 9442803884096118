import Foundation
import Logging
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusHTTP
import PlexusWire
import Synchronization

/// The gateway's HTTP API: OpenAI-compatible `POST /v1/chat/completions`,
/// `POST /v1/completions` and `GET /v1/models`, plus `GET /v1/receipts/{id}`,
/// `/health` and `/metrics`.
public struct GatewayServer: Sendable {
    public let gateway: Gateway
    public let metrics: @Sendable () -> [UInt8]

    public init(gateway: Gateway, metrics: @escaping @Sendable () -> [UInt8]) {
        self.gateway = gateway
        self.metrics = metrics
    }

    static func response(_ bytes: [UInt8], status: Int = 200, headers: [(String, String)] = []) -> HTTPResponseOut {
        .json(bytes, status: status, headers: headers)
    }

    static func error(_ e: OpenAIError) -> HTTPResponseOut {
        GatewayMetrics.errors.increment()
        return response(e.json, status: e.status, headers: e.retryAfter.map { [("retry-after", String($0))] } ?? [])
    }

    /// Answers one request.
    public func handle(_ request: HTTPRequestIn) async -> HTTPResponseOut {
        let g = gateway
        switch (request.method, request.path) {
        case (.GET, "/health"):
            let problems = GatewayHealth.problems(g.healthFacts())
            let (status, code) = HealthProblem.verdict(problems)
            return Self.response(OpenAIShapes.data(["status": status, "gateway": g.config.key.address.text, "chain": g.chainId,
                                                    "models": g.directory.servedModels().sorted(),
                                                    "problems": problems.map { ["component": $0.component, "reason": $0.reason] }]),
                                 status: code)
        case (.GET, "/metrics"):
            return .full(status: 200, headers: [("content-type", "text/plain; version=0.0.4")], body: metrics())
        case (.GET, "/v1/models"):
            do { _ = try g.account(forAuthorization: request.header("authorization")) } catch let e as OpenAIError { return Self.error(e) } catch {
                return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
            }
            let served = g.directory.servedModels()
            var data: [[String: Any]] = []
            for card in g.directory.allModels() where served.contains(card.id) {
                var entry: [String: Any] = ["id": card.id, "object": "model", "created": 0, "owned_by": card.creator.text, "context_length": Int(card.contextLength),
                                            "license": card.license, "quantization": card.quantization, "architecture": card.architecture]
                // Measured quality (the ledger's evaluations, the latest of each suite and evaluator) and latency (this gateway's view of its nodes).
                if let evaluations = try? await g.evaluations(card.id), !evaluations.isEmpty {
                    entry["evaluations"] = evaluations.map { ["suite": $0.name, "suite_hash": $0.suite.hex, "correct": Int($0.correct), "tasks": $0.tasks,
                                                             "score": Double($0.scoreBps) / 10_000, "evaluator": $0.evaluator.text, "height": Int($0.height)] }
                }
                if let latency = g.directory.medianTimeToFirstToken(card.id) { entry["latency_ms"] = latency }
                // Each node's offer with what the network's gateways measured of it (the ledger's service records).
                let endpoints = g.directory.endpoints(card.id)
                entry["endpoints"] = endpoints.map { e -> [String: Any] in
                    var x: [String: Any] = ["node": e.node.nodeKey.text, "context_length": Int(min(e.offer.contextLength, card.contextLength)),
                                            "region": e.offer.region, "price_in": String(e.offer.priceIn.units), "price_out": String(e.offer.priceOut.units)]
                    if let m = e.measured { x["service"] = Self.serviceJSON(m) }
                    return x
                }
                let day = endpoints.compactMap { $0.measured?[.day] }
                let (attempts, answered) = day.reduce((UInt64(0), UInt64(0))) { ($0.0 + $1.attempts, $0.1 + $1.answered) }
                if attempts > 0 { entry["uptime_1d"] = Double(answered) / Double(attempts) }
                // What a request pays now: a node's ask plus the model's spot premium, in base units per million tokens.
                let offers = g.directory.offers(card.id)
                if let premium = try? await g.spotPremium(card.id).premium, !offers.isEmpty {
                    func range(_ f: (Offer) -> UInt64) -> [String] { [String(offers.map(f).min()! &+ premium), String(offers.map(f).max()! &+ premium)] }
                    entry["pricing"] = ["unit": "base units per million tokens", "premium": String(premium),
                                        "input": range { $0.priceIn.units }, "output": range { $0.priceOut.units }]
                }
                data.append(entry)
            }
            return Self.response(OpenAIShapes.data(["object": "list", "data": data]))
        case (.GET, _) where request.path.hasPrefix("/v1/trace/"):
            // Public (the explorer's): which nodes served a request in turn and how many tokens each sent,
            // paid or not — no prompt, no output, no requestor's key. A request id is unguessable.
            guard let id = try? Hash256(hex: String(request.path.dropFirst("/v1/trace/".count))), let record = try? g.store.get(id) else {
                return Self.error(OpenAIError(404, "invalid_request_error", "not_found", "No request with that id."))
            }
            let trace: [String: Any] = [
                "request_id": id.hex, "model": record.model, "state": record.state, "created_ms": Int(record.createdMillis), "gateway": g.config.key.address.text,
                "attempts": record.attempts.map { a -> [String: Any] in
                    var o: [String: Any] = ["node": a.node.text, "output_tokens": Int(a.outputTokens), "paid": a.paid]
                    if let why = a.failure { o["failure"] = why }
                    return o
                },
            ]
            return Self.response(Array((try? JSONSerialization.data(withJSONObject: trace, options: [.sortedKeys])) ?? Data()))
        case (.GET, _) where request.path.hasPrefix("/v1/receipts/") && request.path.hasSuffix("/transcript"):
            return await Self.transcript(g, request)
        case (.GET, _) where request.path.hasPrefix("/v1/receipts/"):
            do {
                _ = try g.account(forAuthorization: request.header("authorization"))
                let raw = String(request.path.dropFirst("/v1/receipts/".count))
                guard let id = try? Hash256(hex: raw), let record = try g.store.get(id).map(g.countersigned) else {
                    return Self.error(OpenAIError(404, "invalid_request_error", "not_found", "No request with that id."))
                }
                var settlement: Settlement?
                var verification: VerificationView?
                if record.state != "unsettled" {
                    async let s = try? g.ledger.settlement(id)
                    async let v = try? g.ledger.verification(id)
                    (settlement, verification) = await (s, v)
                }
                // The verification: whether the lot drew a check, its verdict, any dispute and its outcome.
                struct View: Encodable { var request: RequestRecord; var settlement: Settlement?; var verification: VerificationView? }
                return Self.response(Array(try JSONEncoder.compact.encode(View(request: record, settlement: settlement, verification: verification))))
            } catch let e as OpenAIError {
                return Self.error(e)
            } catch {
                return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
            }
        case (.POST, "/v1/chat/completions"): return await Self.complete(g, request, chat: true)
        case (.POST, "/v1/completions"): return await Self.complete(g, request, chat: false)
        default:
            return Self.error(OpenAIError(404, "invalid_request_error", "unknown_url", "Unknown request URL: \(request.method) \(request.path.prefix(100))."))
        }
    }

    /// A node's measured service as `/v1/models` shows it: per window, uptime and the latency
    /// and throughput percentiles (upper edges of the ledger's histogram buckets).
    static func serviceJSON(_ v: ServiceView) -> [String: Any] {
        var out: [String: Any] = [:]
        for w in v.windows {
            var x: [String: Any] = ["attempts": Int(w.attempts), "answered": Int(w.answered), "reports": Int(w.reports)]
            if let u = w.uptime { x["uptime"] = u }
            if let t = w.ttftMillis { x["ttft_ms"] = ["p50": t.p50, "p90": t.p90, "p99": t.p99] }
            if let r = w.tokensPerSecond { x["tokens_per_second"] = ["p50": r.p50, "p90": r.p90, "p99": r.p99] }
            out[w.window] = x
        }
        return out
    }

    /// `GET /v1/receipts/{id}/transcript`: the request's transcript, for its requestor
    /// (by API key) and for the verifiers the ledger assigned to it (by signature, see
    /// `TranscriptAccess`), while its settlement can still be challenged.
    static func transcript(_ g: Gateway, _ request: HTTPRequestIn) async -> HTTPResponseOut {
        do {
            let raw = request.path.dropFirst("/v1/receipts/".count).dropLast("/transcript".count)
            guard let id = try? Hash256(hex: String(raw)) else {
                return error(OpenAIError(404, "invalid_request_error", "not_found", "No request with that id."))
            }
            var allowed = false
            if let named = request.header(TranscriptAccess.verifierHeader) {
                guard let v = TranscriptAccess.verifier(chainId: g.chainId, requestId: id, address: named,
                                                        signature: request.header(TranscriptAccess.signatureHeader)) else {
                    return error(OpenAIError(401, "authentication_error", "bad_signature", "The verifier's signature does not verify."))
                }
                let verification = try? await g.ledger.verification(id)
                allowed = verification?.check.map { $0.state == "assigned" && $0.verifier == v } == true
                    || verification?.dispute.map { $0.outcome == "open" && $0.committee.contains { $0.account == v } } == true
                guard allowed else {
                    return error(OpenAIError(403, "permission_error", "forbidden", "The ledger has not assigned \(v.short) to this request."))
                }
            }
            guard let record = try g.store.get(id) else {
                return error(OpenAIError(404, "invalid_request_error", "not_found", "No request with that id."))
            }
            if !allowed { allowed = try record.requestor == g.account(forAuthorization: request.header("authorization")) }
            guard allowed else {
                return error(OpenAIError(403, "permission_error", "forbidden", "Only the request's requestor (or an assigned verifier) may read its transcript."))
            }
            guard let view = try g.countersigned(record).transcriptView(chainId: g.chainId) else {
                return error(OpenAIError(404, "invalid_request_error", "transcript_gone", "The request's transcript is no longer kept (its settlement is final)."))
            }
            return response(Array(try JSONEncoder.compact.encode(view)))
        } catch let e as OpenAIError {
            return error(e)
        } catch {
            return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
        }
    }

    /// A box for the pieces stream's iterator, handed from the handler to the body writer.
    final class PieceIterator: @unchecked Sendable {
        // Invariant: used by one task at a time (the handler, then the body writer).
        var iterator: AsyncStream<Piece>.Iterator
        init(_ it: AsyncStream<Piece>.Iterator) { iterator = it }
    }

    /// What the serving tasks hand the body writer: each choice's pieces and its end (choice `index`).
    enum Piece: Sendable {
        case text(Emitted, index: Int)
        case done(finish: String, prompt: Int, completion: Int, cached: Int, index: Int)
        case failed(OpenAIError)
    }

    /// The request id of choice `i` of `n` (choice 0 keeps the request's own).
    static func choiceId(_ requestId: Hash256, _ i: Int) -> Hash256 {
        i == 0 ? requestId : Hash256.of(requestId.bytes + Array("plexus-choice".utf8) + [UInt8(i)])
    }

    /// Choice `i` of a request for `n`: served on its own (its own node, receipt and settlement),
    /// drawn with seed + i.
    static func choice(_ req: ChatRequest, _ i: Int) -> ChatRequest {
        var one = req
        one.n = nil
        if i > 0 { one.seed = (req.seed ?? 0) &+ Int64(i) }
        return one
    }

    static func complete(_ g: Gateway, _ request: HTTPRequestIn, chat: Bool) async -> HTTPResponseOut {
        g.active.add(1, ordering: .relaxed)
        // A streamed answer is counted (and holds its key's place) until its serving task ends.
        var handedOver = false
        var limitedKey: Hash256?
        defer {
            if !handedOver {
                g.active.subtract(1, ordering: .relaxed)
                if let limitedKey { g.limiter.finish(limitedKey) }
            }
        }
        let requestor: Address
        let req: ChatRequest
        do {
            let caller = try g.caller(forAuthorization: request.header("authorization"))
            try g.limiter.admitKey(caller.key)
            limitedKey = caller.key
            requestor = caller.account
            do {
                let bytes = request.body
                req = try ChatRequest.read(bytes)
            } catch let e as PlexusError {
                throw OpenAIError.invalid(e.message)
            } catch {
                throw OpenAIError.invalid("We could not parse the JSON body of your request: \(LedgerAPI.describe(error))", code: "invalid_json")
            }
        } catch let e as OpenAIError {
            return error(e)
        } catch {
            return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
        }
        if let n = req.n, !(1...8).contains(n) { return error(OpenAIError.invalid("n must be 1...8", code: "invalid_value")) }
        let requestId = g.newRequestId()
        let completionId = (chat ? "chatcmpl-" : "cmpl-") + requestId.hex.prefix(24)
        let created = Int(Date().timeIntervalSince1970)
        var headers: [(String, String)] = [("x-plexus-request-id", requestId.hex)]
        let model = req.model
        // Hand-written JSON (see FastJSON): one chunk per token.
        let head = "{\"id\":\"\(completionId)\",\"object\":\"\(chat ? "chat.completion.chunk" : "text_completion")\",\"created\":\(created),\"model\":\(FastJSON.quote(model)),"
        let wantsLogprobs = req.logprobs != nil
        /// The choice's `logprobs` value for `entries` (completions count text offsets from `offset`).
        @Sendable func logprobsJSON(_ entries: [LogprobEntry], offset: Int) -> String {
            guard wantsLogprobs else { return "null" }
            return chat ? LogprobEntry.chat(entries) : LogprobEntry.completion(entries, offset: offset)
        }
        @Sendable func chunk(_ content: String?, role: Bool = false, finish: String?, logprobs: [LogprobEntry] = [], offset: Int = 0, index: Int = 0) -> [UInt8] {
            let f = finish.map { FastJSON.quote($0) } ?? "null"
            let lp = logprobs.isEmpty ? "null" : logprobsJSON(logprobs, offset: offset)
            let body: String
            if chat {
                var delta = role ? "\"role\":\"assistant\"," : ""
                if let content { delta += "\"content\":" + FastJSON.quote(content) }
                if delta.hasSuffix(",") { delta.removeLast() }
                body = head + "\"choices\":[{\"index\":\(index),\"delta\":{\(delta)},\"logprobs\":\(lp),\"finish_reason\":\(f)}]}"
            } else {
                body = head + "\"choices\":[{\"index\":\(index),\"text\":\(FastJSON.quote(content ?? "")),\"logprobs\":\(lp),\"finish_reason\":\(f)}]}"
            }
            return Array(("data: " + body + "\n\n").utf8)
        }
        @Sendable func usage(_ p: Int, _ c: Int, cached: Int) -> String {
            "{\"prompt_tokens\":\(p),\"completion_tokens\":\(c),\"total_tokens\":\(p + c),"
                + "\"prompt_tokens_details\":{\"cached_tokens\":\(cached),\"audio_tokens\":0},"
                + "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}"
        }

        let n = max(1, min(8, req.n ?? 1))
        if n > 1 { headers.append(("x-plexus-choices", (0..<n).map { Self.choiceId(requestId, $0).hex }.joined(separator: ","))) }
        if req.stream != true {
            // One answer (or n, served side by side): in this task, no stream between.
            var outcomes: [(Execution.Outcome, [LogprobEntry])] = []
            do {
                outcomes = try await withThrowingTaskGroup(of: (Int, Execution.Outcome, [LogprobEntry]).self) { group in
                    for i in 0..<n {
                        group.addTask {
                            let collected = Mutex<[LogprobEntry]>([])
                            let r = try await g.serve(Self.choice(req, i), chat: chat, requestor: requestor, requestId: Self.choiceId(requestId, i)) { e in
                                if !e.logprobs.isEmpty { collected.withLock { $0 += e.logprobs } }
                            }
                            return (i, r, collected.withLock { $0 })
                        }
                    }
                    var all: [(Int, Execution.Outcome, [LogprobEntry])] = []
                    for try await o in group { all.append(o) }
                    return all.sorted { $0.0 < $1.0 }.map { ($0.1, $0.2) }
                }
            } catch let e as OpenAIError {
                return error(e)
            } catch is CancellationError {
                return error(OpenAIError(499, "api_error", "cancelled", "The client went away."))
            } catch {
                return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
            }
            let r = outcomes[0].0
            headers += [("x-plexus-node", r.lastNode.text), ("x-plexus-attempts", String(r.attempts))]
            if !r.copies.isEmpty {
                headers += [("x-plexus-redundancy", r.agreed ? "agreed" : "disagreed"), ("x-plexus-copies", r.copies.map(\.hex).joined(separator: ","))]
            }
            let choices = outcomes.enumerated().map { i, o in
                let (r, entries) = o
                let lp = logprobsJSON(entries, offset: 0)
                return chat
                    ? "{\"index\":\(i),\"message\":{\"role\":\"assistant\",\"content\":\(FastJSON.quote(r.text)),\"refusal\":null},\"logprobs\":\(lp),\"finish_reason\":\(FastJSON.quote(r.finish))}"
                    : "{\"index\":\(i),\"text\":\(FastJSON.quote(r.text)),\"logprobs\":\(lp),\"finish_reason\":\(FastJSON.quote(r.finish))}"
            }
            // Usage as OpenAI counts it for n choices: the prompt once, the completions together.
            let completion = outcomes.reduce(0) { $0 + $1.0.completionTokens }
            let json = "{\"id\":\"\(completionId)\",\"object\":\"\(chat ? "chat.completion" : "text_completion")\",\"created\":\(created),"
                + "\"model\":\(FastJSON.quote(model)),\"choices\":[\(choices.joined(separator: ","))],\"usage\":\(usage(r.promptTokens, completion, cached: r.cachedTokens))}"
            return response(Array(json.utf8), headers: headers)
        }

        let (stream, cont) = AsyncStream.makeStream(of: Piece.self, bufferingPolicy: .unbounded)
        handedOver = true
        let heldKey = limitedKey
        let task = Task {
            defer {
                g.active.subtract(1, ordering: .relaxed)
                if let heldKey { g.limiter.finish(heldKey) }
            }
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for i in 0..<n {
                        group.addTask {
                            let r = try await g.serve(Self.choice(req, i), chat: chat, requestor: requestor, requestId: Self.choiceId(requestId, i)) { piece in
                                cont.yield(.text(piece, index: i))
                            }
                            cont.yield(.done(finish: r.finish, prompt: r.promptTokens, completion: r.completionTokens, cached: r.cachedTokens, index: i))
                        }
                    }
                    try await group.waitForAll()
                }
            } catch let e as OpenAIError {
                cont.yield(.failed(e))
            } catch is CancellationError {
                cont.yield(.failed(OpenAIError(499, "api_error", "cancelled", "The client went away.")))
            } catch {
                cont.yield(.failed(OpenAIError(500, "api_error", "internal_error", "\(error)")))
            }
            cont.finish()
        }
        cont.onTermination = { _ in task.cancel() }
        let box = PieceIterator(stream.makeAsyncIterator())
        // Streaming: wait for the first piece so that errors before any output keep their status.
        let first = await box.iterator.next()
        if case let .failed(e)? = first { return error(e) }
        let includeUsage = req.streamOptions?.includeUsage == true
        headers += [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        let out = BytePipe()
        Task {
            // The client going away closes `out`: then the serving task is cancelled.
            func write(_ b: [UInt8]) -> Bool {
                if out.write(b) { return true }
                task.cancel()
                return false
            }
            defer { out.finish() }
            var pending = first
            var offsets = [Int](repeating: 0, count: n)
            var ended = 0, completion = 0
            if chat { for i in 0..<n { guard write(chunk("", role: true, finish: nil, index: i)) else { return } } }
            while let p = pending {
                switch p {
                case let .text(t, i):
                    guard write(chunk(t.text, finish: nil, logprobs: t.logprobs, offset: offsets[i], index: i)) else { return }
                    offsets[i] += t.logprobs.reduce(0) { $0 + $1.token.utf8.count }
                case let .failed(e):
                    // After output has started the status is sent; say what happened in the stream.
                    _ = write(OpenAIShapes.sse(["error": ["message": e.message, "type": e.type, "code": e.code, "param": NSNull()]]))
                    return
                case let .done(finish, prompt, tokens, cached, i):
                    guard write(chunk(nil, finish: finish, index: i)) else { return }
                    ended += 1
                    completion += tokens
                    if ended == n && includeUsage {
                        guard write(Array(("data: " + head + "\"choices\":[],\"usage\":\(usage(prompt, completion, cached: cached))}\n\n").utf8)) else { return }
                    }
                }
                pending = await box.iterator.next()
            }
            _ = write(OpenAIShapes.done)
        }
        return .stream(status: 200, headers: headers, body: out)
    }

    /// Serves until a shutdown signal, settling in the background.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let g = gateway
        let settling = Task { await g.settler.run(intervalMillis: g.config.settleIntervalMillis) }
        let refreshing = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(g.config.settleIntervalMillis)))
                try? await g.directory.refresh()
            }
        }
        let reporting = Task { await g.reportService() }
        let server = PlainHTTPServer(host: g.config.host, port: g.config.port, name: "plexus-gateway") { request in await self.handle(request) }
        defer {
            refreshing.cancel()
            reporting.cancel()
        }
        do {
            try await server.run { port in await onListening(port) }
        } catch {
            settling.cancel()
            await settling.value
            throw error
        }
        // The settler's last round is bounded: what is left is resubmitted on the next start.
        settling.cancel()
        await settling.value
        await g.shutdown()
    }
}
