import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PlexusCore

/// A typed client for the ledger API, shared by every role that talks to a ledger.
public struct LedgerClient: Sendable {
    /// The ledger's base URL, such as `http://127.0.0.1:7700` (the first replica's, given several).
    public let baseURL: String
    /// Every replica's base URL: a request that cannot reach one (or that it answers 503) goes to the next.
    public let replicas: [String]
    let http: HTTPClient
    let timeout: TimeAmount
    /// The replica that answered last, tried first.
    let preferred = Locked(0)

    /// A client for the ledger at `baseURL`, or for the replicas at `baseURL`'s comma-separated URLs.
    /// Given several replicas (and no `http`), a replica that refuses connections is passed over at
    /// once ("fail fast"); one ledger keeps the shared client, which retries connecting until `timeout`.
    public init(baseURL: String, http: HTTPClient? = nil, timeout: TimeAmount = .seconds(60)) {
        replicas = baseURL.split(separator: ",").map { part in
            var url = part.trimmingCharacters(in: .whitespaces)
            while url.hasSuffix("/") { url.removeLast() }
            return url
        }.filter { !$0.isEmpty }
        self.baseURL = replicas.first ?? ""
        self.http = http ?? (replicas.count > 1 ? .failFast : .shared)
        self.timeout = timeout
    }

    /// The chain head.
    public func status() async throws -> LedgerService.Status {
        try await get("/v1/status")
    }

    /// An account's latest view.
    public func account(_ address: Address) async throws -> AccountView {
        try await get("/v1/accounts/\(address.text)")
    }

    /// Protocol parameters.
    public func params() async throws -> ParamsView {
        try await get("/v1/params")
    }

    /// Where the supply is: balances, stake, unbonding, escrow, treasury, pending.
    public func supply() async throws -> SupplyView {
        try await get("/v1/supply")
    }

    /// The parameters in force after block `height` (later changes undone).
    public func params(at height: UInt64) async throws -> ParamsView {
        try await get("/v1/params?at=\(height)")
    }

    /// A block, or nil if none at that height.
    public func block(_ height: UInt64) async throws -> BlockView? {
        do {
            return try await get("/v1/blocks/\(height)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// A block's header and a page of its transactions' hashes, kinds and senders.
    public func blockSummary(_ height: UInt64, offset: Int = 0, limit: Int = 100) async throws -> BlockSummaryView? {
        do {
            return try await get("/v1/blocks/\(height)?summary=1&offset=\(offset)&limit=\(limit)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// A committed transaction with where it is, or nil if it is not (yet) committed.
    public func committedTransaction(_ hash: Hash256) async throws -> TxLocation? {
        do {
            return try await get("/v1/tx/\(hash.hex)?body=1")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// Where a committed transaction is, or nil if it is not (yet) committed.
    public func transaction(_ hash: Hash256) async throws -> TxLocation? {
        do {
            return try await get("/v1/tx/\(hash.hex)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// Registered nodes that may serve now (jailed nodes left out).
    public func nodes() async throws -> [NodeRecord] {
        try await nodeRegistry().servable
    }

    /// Every registered node with its operator's standing.
    public func nodeRegistry() async throws -> NodesView { try await get("/v1/nodes") }

    /// Which layer spans of `model` shards serve (and how many whole-model nodes).
    public func shards(_ model: String) async throws -> ShardCoverage {
        let escaped = model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? model
        return try await get("/v1/shards/\(escaped)")
    }

    /// A settled request's check and dispute (nil if it was not settled).
    public func verification(_ id: Hash256) async throws -> VerificationView? {
        do {
            return try await get("/v1/verification/\(id.hex)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// Disputes, newest first (at most 500).
    public func disputes() async throws -> [DisputeView] {
        let r: [String: [DisputeView]] = try await get("/v1/disputes")
        return r["disputes"] ?? []
    }

    /// One request's dispute.
    public func dispute(_ id: Hash256) async throws -> DisputeView { try await get("/v1/disputes/\(id.hex)") }

    /// Registered verifiers with their standing.
    public func verifiers() async throws -> [StandingView] {
        let r: [String: [StandingView]] = try await get("/v1/verifiers")
        return r["verifiers"] ?? []
    }

    /// What verifier `a` has to do now.
    public func work(of a: Address) async throws -> VerifierWorkView { try await get("/v1/verifiers/\(a.text)/work") }

    /// `a`'s standing.
    public func standing(of a: Address) async throws -> StandingView { try await get("/v1/standing/\(a.text)") }

    /// Model cards.
    public func models() async throws -> [ModelCard] {
        let r: [String: [ModelCard]] = try await get("/v1/models")
        return r["models"] ?? []
    }

    /// Registered gateways.
    public func gateways() async throws -> [GatewayRecord] {
        let r: [String: [GatewayRecord]] = try await get("/v1/gateways")
        return r["gateways"] ?? []
    }

    /// The settlements of those of `ids` that were settled.
    public func settlements(_ ids: [Hash256]) async throws -> [Hash256: Settlement] {
        var out: [Hash256: Settlement] = [:]
        var i = 0
        while i < ids.count {
            // Canonical bytes both ways: gateways look up thousands of settlements a second.
            let chunk = Array(ids[i..<min(ids.count, i + 1_000)])
            var w = CanonicalWriter()
            w.write(array: chunk)
            let bytes = try await exchange(.POST, "/v1/settlements/lookup", body: w.bytes, contentType: LedgerAPI.canonicalType)
            var r = CanonicalReader(bytes)
            do {
                for s in try r.readArray(of: Settlement.self, limit: chunk.count) { out[s.requestId] = s }
                try r.expectEnd()
            } catch {
                throw PlexusError(.malformed, "unexpected answer from the ledger for a settlement lookup", cause: error)
            }
            i += chunk.count
        }
        return out
    }

    /// A request's settlement, or nil if it has not been settled.
    /// An agent's grant and what it may still spend (nil: no agent).
    public func agent(_ address: Address) async throws -> AgentView? {
        do {
            return try await get("/v1/agents/\(address.text)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// What a model id may hold, as it goes into a path or query unescaped (a '/' is escaped).
    static let modelIdCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-:"))

    /// Every dataset.
    public func datasets() async throws -> [Dataset] { try await get("/v1/datasets") }

    /// How many versions of `name` `owner` has registered.
    public func datasetsOf(_ owner: Address, name: String) async throws -> Int {
        try await datasets().filter { $0.owner == owner && $0.manifest.name == name }.count
    }

    /// A dataset (nil: none with that id).
    public func dataset(_ id: Hash256) async throws -> Dataset? {
        do { return try await get("/v1/datasets/\(id.hex)") } catch let e as PlexusError where e.code == .notFound { return nil }
    }

    /// A data access grant (nil: none with that id).
    public func dataGrant(_ id: Hash256) async throws -> DataGrant? {
        do { return try await get("/v1/data/grants/\(id.hex)") } catch let e as PlexusError where e.code == .notFound { return nil }
    }

    /// A model's recorded evaluations.
    public func evaluations(_ model: String) async throws -> [Evaluation] {
        try await get("/v1/evaluations/" + (model.addingPercentEncoding(withAllowedCharacters: Self.modelIdCharacters) ?? model))
    }

    /// Each model's asks and congestion premium (or one model's).
    public func marketPrices(model: String? = nil) async throws -> [MarketView] {
        let q = model.map { "?model=" + ($0.addingPercentEncoding(withAllowedCharacters: Self.modelIdCharacters) ?? $0) } ?? ""
        return try await get("/v1/market/prices" + q)
    }

    /// The payment for the call of request `id`, if one was made.
    public func callPayment(_ id: Hash256) async throws -> CallPayment? {
        do {
            return try await get("/v1/calls/\(id.hex)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// The spot premium a settled request paid (nil: none).
    public func marketCharge(_ id: Hash256) async throws -> SpotCharge? {
        do {
            return try await get("/v1/market/charges/\(id.hex)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    public func settlement(_ id: Hash256) async throws -> Settlement? {
        do {
            return try await get("/v1/settlements/\(id.hex)")
        } catch let e as PlexusError where e.code == .notFound {
            return nil
        }
    }

    /// All proposals.
    public func proposals() async throws -> [ProposalView] {
        let r: [String: [ProposalView]] = try await get("/v1/governance/proposals")
        return r["proposals"] ?? []
    }

    /// One proposal.
    public func proposal(_ id: Hash256) async throws -> ProposalView { try await get("/v1/governance/proposals/\(id.hex)") }

    /// An account's governance standing.
    /// Who voted on a proposal and who could have and did not.
    public func ballots(_ id: Hash256) async throws -> BallotsView { try await get("/v1/governance/proposals/\(id.hex)/ballots") }

    public func voter(_ a: Address) async throws -> VoterView { try await get("/v1/governance/voters/\(a)") }

    /// The federation.
    public func federation() async throws -> FederationView { try await get("/v1/governance/federation") }

    /// Every holder's stake and reputation.
    public func holders() async throws -> [FairnessAnalysis.Holder] {
        let r: [String: [FairnessAnalysis.Holder]] = try await get("/v1/governance/holders")
        return r["holders"] ?? []
    }

    /// All communities.
    public func communities() async throws -> [CommunityView] {
        let r: [String: [CommunityView]] = try await get("/v1/communities")
        return r["communities"] ?? []
    }

    /// One community.
    public func community(_ id: String) async throws -> CommunityView {
        let escaped = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? id
        return try await get("/v1/communities/\(escaped)")
    }

    /// Events after `since`, waiting up to `timeoutMillis` for new blocks.
    public func events(since: UInt64, timeoutMillis: UInt64 = 10_000) async throws -> EventsView {
        try await get("/v1/events?since=\(since)&timeout_ms=\(timeoutMillis)")
    }

    /// Submits a signed transaction; with `waitForCommit` returns once it is durable.
    public func submit(_ tx: Transaction, waitForCommit: Bool = true) async throws -> LedgerService.Receipt {
        let answer = try await exchange(.POST, "/v1/tx" + (waitForCommit ? "?wait=commit" : ""), body: tx.canonicalBytes,
                                        contentType: LedgerAPI.canonicalType)
        do {
            return try JSONDecoder().decode(LedgerService.Receipt.self, from: Data(answer))
        } catch {
            throw PlexusError(.malformed, "unexpected answer from the ledger for a transaction", cause: error)
        }
    }

    /// Submits `txs` in order in one request (up to `LedgerAPI.maxBatchTransactions`):
    /// a receipt or an error for each.
    public func submitAll(_ txs: [Transaction], waitForCommit: Bool = true) async throws -> [Result<LedgerService.Receipt, PlexusError>] {
        var w = CanonicalWriter()
        w.write(array: txs)
        let answer = try await exchange(.POST, "/v1/txs" + (waitForCommit ? "?wait=commit" : ""), body: w.bytes,
                                        contentType: LedgerAPI.canonicalType)
        let decoded: LedgerAPI.BatchAnswer
        do {
            decoded = try JSONDecoder().decode(LedgerAPI.BatchAnswer.self, from: Data(answer))
        } catch {
            throw PlexusError(.malformed, "unexpected answer from the ledger for a batch of transactions", cause: error)
        }
        guard decoded.results.count == txs.count else {
            throw PlexusError(.malformed, "the ledger answered for \(decoded.results.count) of \(txs.count) transactions")
        }
        return decoded.results.map { item in
            if let r = item.receipt { return .success(r) }
            return .failure(PlexusError(PlexusError.Code(item.error?.code ?? "malformed"), item.error?.message ?? "refused"))
        }
    }

    /// Builds, signs and submits a transaction from `key` with its next nonce.
    public func send(_ body: Transaction.Body, from key: KeyPair, fee: Amount? = nil,
                     waitForCommit: Bool = true) async throws -> LedgerService.Receipt {
        async let statusReq = status()
        async let accountReq = account(key.address)
        async let paramsReq = params()
        let (status, account, params) = try await (statusReq, accountReq, paramsReq)
        let minFee = params.params.first { $0.name == "minFee" }.map { Amount(units: $0.value) } ?? .zero
        let tx = Transaction(chainId: status.chainId, from: key, nonce: account.nonce, fee: fee ?? minFee, body: body)
        return try await submit(tx, waitForCommit: waitForCommit)
    }

    struct ErrorEnvelope: Decodable {
        struct Inner: Decodable { var code: String; var message: String }
        var error: Inner
    }

    func get<T: Decodable>(_ path: String) async throws -> T {
        try await send(.GET, path, body: nil)
    }

    func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: [UInt8]?) async throws -> T {
        let data = Data(try await exchange(method, path, body: body, contentType: "application/json"))
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw PlexusError(.malformed, "unexpected answer from the ledger for \(path)", cause: error)
        }
    }

    /// The body of a successful answer (errors thrown as the ledger described them).
    func exchange(_ method: HTTPMethod, _ path: String, body: [UInt8]?, contentType: String) async throws -> [UInt8] {
        guard replicas.count > 1 else { return try await exchange(baseURL, method, path, body: body, contentType: contentType) }
        let first = preferred.value
        var last: (any Error)?
        for k in 0..<replicas.count {
            let i = (first + k) % replicas.count
            do {
                let bytes = try await exchange(replicas[i], method, path, body: body, contentType: contentType)
                preferred.value = i
                return bytes
            } catch let e as PlexusError where e.code == .io || e.code == .unavailable || e.code == .stateMismatch {
                // Unreachable, without a sealer, or halted: the next replica may serve.
                last = e
            }
        }
        throw last ?? PlexusError(.io, "no ledger replica")
    }

    func exchange(_ baseURL: String, _ method: HTTPMethod, _ path: String, body: [UInt8]?, contentType: String) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        var response: HTTPClientResponse?
        for attempt in 0..<2 where response == nil {
            do {
                response = try await http.execute(request, timeout: timeout)
            } catch let e as ChannelError where e == .ioOnClosedChannel && attempt == 0 {
                // A pooled connection that the ledger closed (its idle timeout) just as it was
                // taken: the request never left, so it goes once more, on a new connection.
                continue
            } catch {
                throw PlexusError(.io, "cannot reach the ledger at \(baseURL)", cause: error)
            }
        }
        guard let response else { throw PlexusError(.io, "cannot reach the ledger at \(baseURL)") }
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let data = Data(buffer: bytes)
        guard (200..<300).contains(Int(response.status.code)) else {
            if let env = try? JSONDecoder().decode(ErrorEnvelope.self, from: data) {
                throw PlexusError(PlexusError.Code(env.error.code), env.error.message)
            }
            throw PlexusError(.io, "ledger answered \(response.status.code) for \(path)")
        }
        return Array(buffer: bytes)
    }
}

extension HTTPClient {
    /// A client that fails a request at once when its host refuses the connection, instead of
    /// retrying until the request's deadline (AsyncHTTPClient's default): for callers that have
    /// another replica or member to try, where a dead one must cost milliseconds, not the timeout.
    public static let failFast: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()
}
