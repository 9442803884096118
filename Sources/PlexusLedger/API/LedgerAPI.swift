import Foundation
import Hummingbird
import Logging
import NIOCore
import PlexusCore

/// The ledger's HTTP/JSON API.
///
/// | route | does |
/// |---|---|
/// | `POST /v1/tx[?wait=commit]` | submit a transaction (JSON, or canonical bytes as `application/x-plexus-canonical`) |
/// | `POST /v1/txs[?wait=commit]` | submit up to 64 transactions in order (canonical bytes); a result for each |
/// | `GET /v1/tx/{hash}[?body=1]` | where a committed transaction is (and the transaction) |
/// | `GET /v1/status` | chain id, height, block hash, state root |
/// | `GET /v1/accounts/{address}` | an account |
/// | `GET /v1/blocks/{height\|latest}[?summary=1&offset=N&limit=M]` | a block with its transactions (or its header and a page of their hashes, kinds and senders) |
/// | `GET /v1/snapshot` | the last durable state at its height, signed by this ledger (canonical bytes; `ledger start --snapshot`) |
/// | `GET /v1/replica/blocks?from=H` | up to 64 blocks from height H, canonical bytes (for a replica catching up) |
/// | `GET /v1/params` | protocol parameters with bounds |
/// | `GET /v1/nodes`, `/v1/models`, `/v1/gateways` | the registries |
/// | `GET /v1/shards/{model}` | which layer spans of a model shards serve, by how many operators; gaps |
/// | `GET /v1/settlements/{request id}` | a request's settlement |
/// | `GET /v1/agents/{address}` | an agent's grant: payer, policy, what is left this period |
/// | `GET /v1/calls/{request id}` | the payment for a call tied to a request |
/// | `GET /v1/market/prices[?model=M]` | each model's asks, congestion premium, utilization and premium history |
/// | `GET /v1/market/charges/{request id}` | the premium a settled request paid |
/// | `GET /v1/datasets[/{id}]`, `GET /v1/data/grants/{id}` | datasets (root, terms, contributors); a data access grant |
/// | `GET /v1/evaluations/{model}` | a model's recorded evaluations (suite, score, the requests behind it) |
/// | `POST /v1/settlements/lookup` | settlements of up to 1000 request ids (`{"ids": [...]}`) |
/// | `GET /v1/events?since=H[&timeout_ms=T]` | events after height H (long-poll) |
/// | `GET /v1/governance/proposals[/{id}]` | proposals with state and tallies |
/// | `GET /v1/governance/proposals/{id}/ballots` | who voted, with what weights and power, and who could have and did not |
/// | `GET /v1/governance/voters/{address}` | delegate, voting power, reputation, communities |
/// | `GET /v1/governance/federation` | federated communities, seats, the assembly |
/// | `GET /v1/governance/holders` | stake and reputation of every holder (for analysis) |
/// | `GET /v1/communities[/{id}]` | communities, members, councils |
/// | `GET /metrics` | Prometheus text |
public enum LedgerAPI {
    /// Largest request body accepted, in bytes.
    public static let maxBodyBytes = 64 * 1024
    /// Largest batch of transactions (`POST /v1/txs`), in bytes and in transactions.
    public static let maxBatchBodyBytes = 2 * 1024 * 1024
    public static let maxBatchTransactions = 64
    /// A page of `GET /v1/replica/blocks` stops once past this many bytes.
    public static let maxBlocksBytes = 8 * 1024 * 1024

    /// The answer to a batch: for each transaction, its receipt or why it was refused.
    public struct BatchAnswer: Codable, Sendable {
        public struct Failure: Codable, Sendable {
            public var code: String
            public var message: String
        }
        public struct Item: Codable, Sendable {
            public var receipt: LedgerService.Receipt?
            public var error: Failure?
        }
        public var results: [Item]
    }

    /// Longest long-poll wait.
    public static let maxPollMillis: UInt64 = 30_000
    /// Most blocks of events returned at once.
    public static let maxEventBlocks = 100

    /// A request's whole body, or 413 past `limit` bytes.
    /// Decodes a request body: our own errors keep their code, any other is a malformed body ("body is not `what`: …").
    static func decoding<T>(_ what: String, _ decode: () throws -> T) throws -> T {
        do {
            return try decode()
        } catch let e as PlexusError {
            throw APIError(e)
        } catch {
            throw APIError(.badRequest, .malformed, "body is not \(what): \(describe(error))")
        }
    }

    static func body(of request: Request, upTo limit: Int) async throws -> ByteBuffer {
        var request = request
        do {
            return try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, .tooLarge, "request body exceeds \(limit) bytes")
        }
    }

    /// Builds the router.
    public static func router(service: LedgerService, store: BlockStore,
                              metrics: @escaping @Sendable () -> [UInt8]) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorMiddleware())

        router.post("/v1/tx") { request, _ -> Response in
            let body = try await Self.body(of: request, upTo: maxBodyBytes)
            let tx = try Self.decoding("a valid transaction") {
                // JSON, or the canonical bytes (what Plexus's own client sends).
                request.headers[.contentType] == LedgerAPI.canonicalType
                    ? try Transaction(canonicalBytes: Array(buffer: body))
                    : try JSONDecoder().decode(Transaction.self, from: Data(buffer: body))
            }
            let wait = request.uri.queryParameters.get("wait") == "commit"
            let receipt = try await service.submit(tx, waitForCommit: wait)
            return try json(receipt, status: wait ? .ok : .accepted)
        }

        router.post("/v1/txs") { request, _ -> Response in
            let body = try await Self.body(of: request, upTo: maxBatchBodyBytes)
            guard request.headers[.contentType] == LedgerAPI.canonicalType else {
                throw APIError(.badRequest, .malformed, "a batch of transactions is sent as \(LedgerAPI.canonicalType)")
            }
            let txs = try Self.decoding("a list of transactions") {
                var r = CanonicalReader(Array(buffer: body))
                let txs = try r.readArray(of: Transaction.self, limit: maxBatchTransactions)
                try r.expectEnd()
                return txs
            }
            let wait = request.uri.queryParameters.get("wait") == "commit"
            let results = try await service.submitAll(txs, waitForCommit: wait)
            return try json(BatchAnswer(results: results.map { r in
                switch r {
                case let .success(receipt): BatchAnswer.Item(receipt: receipt, error: nil)
                case let .failure(e): BatchAnswer.Item(receipt: nil, error: .init(code: e.code.rawValue, message: e.message))
                }
            }), status: wait ? .ok : .accepted)
        }

        // A replicated ledger: transactions forwarded to the replica that seals.
        router.post("/v1/replica/forward") { request, _ -> Response in
            guard let replica = service.ordering.value as? LedgerReplica else {
                throw APIError(.notFound, .notFound, "this ledger is not replicated")
            }
            let body = try await Self.body(of: request, upTo: maxBatchBodyBytes)
            let txs = try Self.decoding("a list of transactions") {
                var r = CanonicalReader(Array(buffer: body))
                let txs = try r.readArray(of: Transaction.self, limit: maxBatchTransactions)
                try r.expectEnd()
                return txs
            }
            // Checked here too: a replica that forwarded a bad signature must not make the sealer seal a refused block.
            let checked = SignatureCheck.verifyAndHash(txs)
            var results = [Result<Void, PlexusError>](repeating: .failure(PlexusError(.badSignature, "signature does not verify")), count: txs.count)
            let good = txs.indices.filter { checked[$0].valid }
            let accepted: [Result<Void, PlexusError>]
            do {
                accepted = try await replica.accept(good.map { Ordered(tx: txs[$0], hash: checked[$0].hash, size: txs[$0].canonicalBytes.count) })
            } catch let e as PlexusError {
                throw APIError(.conflict, e.code, e.message)
            }
            for (i, r) in zip(good, accepted) { results[i] = r }
            return try json(BatchAnswer(results: results.enumerated().map { i, r in
                switch r {
                case .success: BatchAnswer.Item(receipt: LedgerService.Receipt(hash: checked[i].hash, height: 0, index: 0, committed: false), error: nil)
                case let .failure(e): BatchAnswer.Item(receipt: nil, error: .init(code: e.code.rawValue, message: e.message))
                }
            }))
        }

        // A replicated ledger: blocks for a replica that lacks those the log no longer holds.
        router.get("/v1/replica/blocks") { request, _ -> Response in
            guard let from = request.uri.queryParameters.get("from").flatMap({ UInt64($0) }), from >= 1, from <= UInt64(Int64.max) else {
                throw APIError(.badRequest, .malformed, "from must be a height of 1 or more")
            }
            var blocks: [Block] = []
            var bytes = 0
            var h = from
            while blocks.count < 64, bytes < maxBlocksBytes, let b = try store.block(at: h) {
                blocks.append(b)
                bytes += b.canonicalBytes.count
                h += 1
            }
            var w = CanonicalWriter()
            w.write(array: blocks)
            return Response(status: .ok, headers: [.contentType: canonicalType], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
        }

        router.get("/v1/snapshot") { _, _ -> Response in
            let snapshot = try await service.snapshot()
            return Response(status: .ok, headers: [.contentType: canonicalType], body: .init(byteBuffer: ByteBuffer(bytes: snapshot.canonicalBytes)))
        }

        router.get("/v1/tx/:hash") { request, context -> Response in
            let hash = try Hash256(hex: context.parameters.get("hash") ?? "")
            guard let loc = try store.location(of: hash) else {
                throw APIError(.notFound, .notFound, "no committed transaction \(hash)")
            }
            var view = TxLocation(hash: hash, height: loc.height, index: loc.index)
            if request.uri.queryParameters.get("body") == "1", let block = try store.block(at: loc.height), loc.index < block.transactions.count {
                view.transaction = block.transactions[loc.index]
            }
            return try json(view)
        }

        router.get("/v1/status") { _, _ -> Response in
            try json(await service.status())
        }

        router.get("/health") { _, _ -> Response in
            let problems = LedgerHealth.problems(failure: await service.failed, status: await service.status(),
                                                 blockIntervalMillis: UInt64(service.blockInterval / .milliseconds(1)),
                                                 startedMillis: service.startedMillis, now: SystemClock().nowMillis())
            let (status, code) = HealthProblem.verdict(problems)
            struct View: Encodable { var status: String; var problems: [HealthProblem] }
            return try json(View(status: status, problems: problems), status: .init(code: code))
        }

        router.get("/v1/accounts/:address") { _, context -> Response in
            let address = try Address(context.parameters.get("address") ?? "")
            let account = await service.account(address)
            return try json(AccountView(address: address, account: account))
        }

        router.get("/v1/blocks/:height") { request, context -> Response in
            let raw = context.parameters.get("height") ?? ""
            let height: UInt64
            if raw == "latest" {
                height = await service.height()
            } else if let h = UInt64(raw), h <= UInt64(Int64.max) {
                height = h
            } else {
                throw APIError(.badRequest, .malformed, "block height must be a number or 'latest'")
            }
            guard height > 0, let block = try store.block(at: height) else {
                let from = service.historyFrom.map { height < $0 ? " (this replica started from a snapshot at height \($0); ask another for older blocks)" : "" } ?? ""
                throw APIError(.notFound, .notFound, "no block at height \(height)\(from)")
            }
            let q = request.uri.queryParameters
            if q.get("summary") == "1" {
                let offset = q.get("offset").flatMap { Int($0) } ?? 0, limit = q.get("limit").flatMap { Int($0) } ?? 100
                guard offset >= 0, (0...1_000).contains(limit) else { throw APIError(.badRequest, .malformed, "offset is 0 or more, limit 0...1000") }
                return try json(BlockSummaryView(block, offset: offset, limit: limit))
            }
            return try json(BlockView(block))
        }

        router.get("/v1/params") { request, _ -> Response in
            // `?at=H`: the values in force after block H (every later change undone).
            let at = request.uri.queryParameters.get("at")
            if let at {
                guard let h = UInt64(at) else { throw APIError(.badRequest, .malformed, "'at' must be a block height") }
                return try json(await service.read { st in
                    ParamsView(st.params.at(h, undoing: st.paramChanges), at: h, changes: st.paramChanges.filter { $0.height > h })
                })
            }
            return try json(await service.read { st in ParamsView(st.params, changes: st.paramChanges) })
        }

        router.get("/v1/supply") { _, _ -> Response in try json(await service.read { SupplyView($0) }) }
        router.get("/v1/nodes") { _, _ -> Response in try json(await service.read { NodesView(nodes: $0.nodes.values.sorted { $0.owner < $1.owner }, in: $0) }) }
        router.get("/v1/shards/:model") { _, context -> Response in
            let model = context.parameters.get("model") ?? ""
            guard model.utf8.count <= Registry.maxName else { throw APIError(.badRequest, .tooLarge, "a model id is at most \(Registry.maxName) bytes") }
            return try json(await service.read { ShardCoverage.of(model, nodes: NodesView(nodes: $0.nodes.values.sorted { $0.owner < $1.owner }, in: $0).servable) })
        }
        router.get("/v1/verification/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let v = await service.read({ VerificationView(id, in: $0) }) else {
                throw APIError(.notFound, .notFound, "request \(id) has not been settled")
            }
            return try json(v)
        }
        router.get("/v1/disputes") { _, _ -> Response in
            try json(["disputes": await service.read { s in
                s.disputes.values.sorted { ($0.openedHeight, $0.requestId) > ($1.openedHeight, $1.requestId) }.prefix(500).map(DisputeView.init)
            }])
        }
        router.get("/v1/disputes/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let d = await service.read({ $0.disputes[id].map(DisputeView.init) }) else {
                throw APIError(.notFound, .notFound, "request \(id) has not been challenged")
            }
            return try json(d)
        }
        router.get("/v1/verifiers") { _, _ -> Response in
            try json(["verifiers": await service.read { s in s.verifiers.keys.sorted().map { StandingView($0, in: s) } }])
        }
        router.get("/v1/verifiers/:address/work") { _, context -> Response in
            let a = try Address(context.parameters.get("address") ?? "")
            return try json(await service.read { VerifierWorkView(a, in: $0) })
        }
        router.get("/v1/standing/:address") { _, context -> Response in
            let a = try Address(context.parameters.get("address") ?? "")
            return try json(await service.read { StandingView(a, in: $0) })
        }
        router.get("/v1/models") { _, _ -> Response in try json(["models": await service.models()]) }
        router.get("/v1/gateways") { _, _ -> Response in try json(["gateways": await service.gateways()]) }
        router.post("/v1/settlements/lookup") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: maxBodyBytes)
            if request.headers[.contentType] == LedgerAPI.canonicalType {
                // Canonical form both ways (what gateways use): the ids, then the settlements found.
                var r = CanonicalReader(Array(buffer: body))
                guard let ids = try? r.readArray(of: Hash256.self, limit: 1_000), r.remaining == 0 else {
                    throw APIError(.badRequest, .malformed, "body must be up to 1000 request ids in canonical form")
                }
                var w = CanonicalWriter()
                w.write(array: await service.settlements(ids))
                var buf = ByteBuffer()
                buf.writeBytes(w.bytes)
                return Response(status: .ok, headers: [.contentType: LedgerAPI.canonicalType], body: .init(byteBuffer: buf))
            }
            struct Query: Decodable { var ids: [Hash256] }
            guard let q = try? JSONDecoder().decode(Query.self, from: Data(buffer: body)), q.ids.count <= 1_000 else {
                throw APIError(.badRequest, .malformed, "body must be {\"ids\": [up to 1000 request ids]}")
            }
            return try json(["settlements": await service.settlements(q.ids)])
        }
        router.get("/v1/settlements/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let s = await service.settlement(id) else {
                throw APIError(.notFound, .notFound, "request \(id) has not been settled")
            }
            return try json(s)
        }

        router.get("/v1/agents/:address") { _, context -> Response in
            let address = try Address(context.parameters.get("address") ?? "")
            guard let view = await service.read({ s in s.agents[address].map { AgentView($0, in: s) } }) else {
                throw APIError(.notFound, .notFound, "\(address.short) is no agent")
            }
            return try json(view)
        }

        router.get("/v1/market/prices") { request, _ -> Response in
            let wanted = request.uri.queryParameters.get("model")
            if let wanted, wanted.isEmpty || wanted.utf8.count > Registry.maxName { throw APIError(.badRequest, .malformed, "model must be 1...\(Registry.maxName) bytes") }
            let views = await service.read { s in (wanted.map { [$0] } ?? s.models.keys.sorted()).filter { s.models[$0] != nil }.map { MarketView(model: $0, in: s) } }
            if let wanted, views.isEmpty { throw APIError(.notFound, .notFound, "no model '\(wanted.prefix(64))'") }
            return try json(views)
        }

        router.get("/v1/datasets") { _, _ -> Response in
            try json(await service.read { s in s.datasets.values.sorted { ($0.manifest.name, $0.version, $0.id) < ($1.manifest.name, $1.version, $1.id) } })
        }

        router.get("/v1/datasets/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let d = await service.read({ $0.datasets[id] }) else { throw APIError(.notFound, .notFound, "no dataset \(id)") }
            return try json(d)
        }

        router.get("/v1/data/grants/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let g = await service.read({ $0.grants[id] }) else { throw APIError(.notFound, .notFound, "no data grant \(id)") }
            return try json(g)
        }

        router.get("/v1/evaluations/:model") { _, context -> Response in
            let model = context.parameters.get("model") ?? ""
            guard let list = await service.read({ s in s.models[model] == nil ? nil : s.evaluations[model] ?? [] }) else {
                throw APIError(.notFound, .notFound, "no model '\(model.prefix(64))'")
            }
            return try json(list)
        }

        router.get("/v1/market/charges/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let c = await service.read({ $0.spotCharges[id] }) else { throw APIError(.notFound, .notFound, "request \(id) paid no premium") }
            return try json(c)
        }

        router.get("/v1/calls/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let p = await service.read({ $0.callPayments[id] }) else { throw APIError(.notFound, .notFound, "no payment for the call of request \(id)") }
            return try json(p)
        }

        router.get("/v1/events") { request, _ -> Response in
            let q = request.uri.queryParameters
            guard let since = q.get("since").flatMap({ UInt64($0) }), since <= UInt64(Int64.max) else {
                throw APIError(.badRequest, .malformed, "'since' must be a block height")
            }
            let timeout = min(q.get("timeout_ms").flatMap { UInt64($0) } ?? 10_000, maxPollMillis)
            var height = await service.height()
            if height <= since && timeout > 0 {
                await service.waitForHeight(above: since, timeout: .milliseconds(Int64(timeout)))
                height = await service.height()
            }
            let through = min(height, since + UInt64(maxEventBlocks))
            let events = try store.events(after: since, through: through, limit: maxEventBlocks)
            return try json(EventsView(since: since, through: max(through, since), height: height, events: events))
        }

        router.get("/v1/governance/proposals") { _, _ -> Response in
            let list = await service.read { st in
                st.proposals.values.sorted { ($0.createdHeight, $0.id) < ($1.createdHeight, $1.id) }
                    .map { ProposalView(st.proposalView($0.id) ?? $0, state: $0.state(at: st.height)) }
            }
            return try json(["proposals": list])
        }
        router.get("/v1/governance/proposals/:id") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let view = await service.read({ st in st.proposalView(id).map { ProposalView($0, state: $0.state(at: st.height)) } }) else {
                throw APIError(.notFound, .notFound, "no proposal \(id)")
            }
            return try json(view)
        }
        router.get("/v1/governance/proposals/:id/ballots") { _, context -> Response in
            let id = try Hash256(hex: context.parameters.get("id") ?? "")
            guard let view = await service.read({ BallotsView(id, in: $0) }) else { throw APIError(.notFound, .notFound, "no proposal \(id)") }
            return try json(view)
        }
        router.get("/v1/governance/voters/:address") { _, context -> Response in
            let a = try Address(context.parameters.get("address") ?? "")
            return try json(await service.read { VoterView(a, state: $0) })
        }
        router.get("/v1/governance/federation") { _, _ -> Response in
            try json(await service.read { FederationView($0.govTotals) })
        }
        router.get("/v1/governance/holders") { _, _ -> Response in
            try json(["holders": await service.read { $0.holders() }])
        }
        router.get("/v1/communities") { _, _ -> Response in
            let list = await service.read { st in st.communities.keys.sorted().compactMap { st.communities[$0].map { CommunityView($0, state: st) } } }
            return try json(["communities": list])
        }
        router.get("/v1/communities/:id") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let view = await service.read({ st in st.communities[id].map { CommunityView($0, state: st) } }) else {
                throw APIError(.notFound, .notFound, "no community '\(id.prefix(64))'")
            }
            return try json(view)
        }

        router.get("/metrics") { _, _ -> Response in
            var buf = ByteBuffer()
            buf.writeBytes(metrics())
            buf.writeString(await service.read(TrustViews.metrics))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: buf))
        }
        return router
    }

    /// A short description of a decoding error for an API answer.
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): return "missing field '\(key.stringValue)'"
        case let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx):
            return "wrong type at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.dataCorrupted(ctx):
            if let e = ctx.underlyingError as? PlexusError { return e.message }
            let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not valid JSON" : "invalid value at '\(path)'"
        case let e as PlexusError: return e.message
        default: return "\(error)"
        }
    }

    /// The media type of canonical (binary) request and response bodies.
    public static let canonicalType = "application/x-plexus-canonical"

    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        var buf = ByteBuffer()
        buf.writeBytes(data)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buf))
    }
}

/// An error rendered as `{"error": {"code": "...", "message": "..."}}`.
public struct APIError: HTTPResponseError {
    public var status: HTTPResponse.Status
    public var code: PlexusError.Code
    public var message: String
    /// Seconds for a `Retry-After` header (429, 503).
    public var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: PlexusError.Code, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    /// Maps a ledger error to its HTTP status.
    public init(_ e: PlexusError) {
        let status: HTTPResponse.Status = switch e.code {
        case .notFound: .notFound
        case .tooLarge: .contentTooLarge
        case .io, .stateMismatch, .unavailable: .serviceUnavailable
        case .notSealer: .conflict
        case .insufficientFunds: .init(code: 402)
        case .badNonce: .conflict
        default: .badRequest
        }
        self.init(status, e.code, e.message)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ["error": ["code": code.rawValue, "message": message]]
        var r = try LedgerAPI.json(body, status: status)
        if let retryAfter { r.headers[.retryAfter] = String(retryAfter) }
        return r
    }
}

/// Turns every error a handler throws into the JSON error envelope.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            throw e
        } catch let e as PlexusError {
            throw APIError(e)
        } catch let e as HTTPError {
            throw APIError(e.status, PlexusError.Code("http_\(e.status.code)"), e.body ?? e.status.reasonPhrase)
        } catch {
            throw APIError(.internalServerError, .init("internal"), "internal error")
        }
    }
}
