import ArgumentParser
import Foundation
import Logging
import PlexusCore
import PlexusExplorer
import PlexusHTTP
import PlexusLedger

/// `plexus bench explorer`: the explorer's server time per page on a ledger seeded with many
/// nodes and settled requests, served on loopback in this process.
struct ExplorerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explorer", abstract: "Server time per explorer page (p50, p99) on a ledger seeded with nodes and settled requests.")

    @Option(name: .long, help: "Registered nodes.") var nodes: Int = 1_000
    @Option(name: .long, help: "Settled requests (one receipt each).") var receipts: Int = 10_000
    @Option(name: .long, help: "Timed renders of each page (after 3 untimed).") var rounds: Int = 50
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct PageTime: Codable {
        var page: String
        var path: String
        var p50Ms: Double
        var p99Ms: Double
        var maxMs: Double
        enum CodingKeys: String, CodingKey {
            case page, path
            case p50Ms = "p50_ms"
            case p99Ms = "p99_ms"
            case maxMs = "max_ms"
        }
    }

    struct Result: Codable {
        var benchmark = "explorer"
        var nodes: Int
        var receipts: Int
        var rounds: Int
        var blocks: UInt64
        var pages: [PageTime]
        var worstP99Ms: Double
        enum CodingKeys: String, CodingKey {
            case benchmark, nodes, receipts, rounds, blocks, pages
            case worstP99Ms = "worst_p99_ms"
        }
    }

    func validate() throws {
        guard (1...100_000).contains(nodes) else { throw ValidationError("--nodes must be 1...100000") }
        guard (1...1_000_000).contains(receipts) else { throw ValidationError("--receipts must be 1...1000000") }
        guard (1...10_000).contains(rounds) else { throw ValidationError("--rounds must be 1...10000") }
    }

    func run() async throws {
        let dir = NSTemporaryDirectory() + "plexus-explorer-bench-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plx = Amount.unitsPerPLX
        let owners = (0..<nodes).map { KeyPair.deterministic("explorer-bench-node-\($0)") }
        let requestors = (0..<10).map { KeyPair.deterministic("explorer-bench-requestor-\($0)") }
        let creator = KeyPair.deterministic("explorer-bench-creator"), gatewayOwner = KeyPair.deterministic("explorer-bench-gateway-owner")
        let gatewayKey = KeyPair.deterministic("explorer-bench-gateway"), orderer = KeyPair.deterministic("explorer-bench-orderer")
        let genesis = Genesis(chainId: "plexus-bench", timeMillis: SystemClock().nowMillis(), orderer: orderer.address, params: ["maxTxBytes": 1 << 20],
                              accounts: (owners + requestors + [creator, gatewayOwner, gatewayKey]).map { .init(address: $0.address, balance: Amount(units: 1_000_000 * plx)) })
        let store = try BlockStore(path: dir + "/ledger.sqlite")
        try store.initialize(genesis: genesis)
        let service = try LedgerService(store: store, signer: orderer, blockInterval: .milliseconds(20))
        await service.start()
        let fee = try genesis.resolvedParams().minFee
        var nonces: [Address: UInt64] = [:]
        func tx(_ from: KeyPair, _ body: Transaction.Body) -> Transaction {
            let n = nonces[from.address, default: 0]
            nonces[from.address] = n + 1
            return Transaction(chainId: genesis.chainId, from: from, nonce: n, fee: fee, body: body)
        }
        func submit(_ txs: [Transaction]) async throws {
            for chunk in stride(from: 0, to: txs.count, by: 2_048).map({ Array(txs[$0..<min(txs.count, $0 + 2_048)]) }) {
                for r in await service.submitVerified(chunk.map { ($0, $0.hash) }) { if case let .failure(e) = r { throw e } }
            }
        }
        benchProgress("registering \(nodes) nodes, a model and a gateway")
        let weights = Hash256.of(Array("explorer-bench-weights".utf8))
        let card = ModelCard(id: "bench-model", weightsHash: weights, architecture: "llama", quantization: "Q4_1", contextLength: 8192,
                             license: "apache-2.0", capabilities: ["chat"], creator: creator.address, royaltyBps: 100)
        var setup = [tx(creator, .registerModel(card)),
                     tx(gatewayOwner, .registerGateway(key: gatewayKey.address,
                                                       keyProof: gatewayKey.sign(Registry.gatewayKeyProofBytes(chainId: genesis.chainId, owner: gatewayOwner.address))))]
        for (i, o) in owners.enumerated() {
            setup.append(tx(o, .stake(amount: Amount(units: (100 + UInt64(i % 50)) * plx))))
            let price = Amount(units: UInt64(1 + i % 7) * plx / 10)
            setup.append(tx(o, .registerNode(nodeKey: o.address, keyProof: o.sign(Registry.nodeKeyProofBytes(chainId: genesis.chainId, owner: o.address)),
                                             endpoint: "http://10.0.\(i / 250).\(i % 250):8000",
                                             offers: [Offer(model: "bench-model", priceIn: price, priceOut: price)])))
        }
        for r in requestors { setup.append(tx(r, .deposit(requestor: r.address, amount: Amount(units: 100_000 * plx)))) }
        try await submit(setup)
        benchProgress("settling \(receipts) requests")
        var settles: [Transaction] = []
        var batch: [Receipt] = []
        var ids: [Hash256] = []
        for k in 0..<receipts {
            let node = owners[k % owners.count]
            let price = Amount(units: UInt64(1 + (k % owners.count) % 7) * plx / 10)
            var r = Receipt(requestId: Hash256.of(Array("explorer-bench-request-\(k)".utf8)), requestHash: Hash256.of(Array("body \(k)".utf8)),
                            requestor: requestors[k % requestors.count].address, node: node.address, modelHash: weights,
                            inputTokens: 20 + UInt64(k % 100), outputTokens: 10 + UInt64(k % 200), firstOutputToken: 0,
                            priceIn: price, priceOut: price, outputHash: Hash256.of(Array("out \(k)".utf8)), timeMillis: 1)
            r.signAsNode(node, chainId: genesis.chainId)
            r.countersign(gatewayKey, chainId: genesis.chainId)
            ids.append(r.requestId)
            batch.append(r)
            if batch.count == 500 || k == receipts - 1 {
                settles.append(tx(gatewayKey, .settle(receipts: batch)))
                batch = []
            }
        }
        try await submit(settles)
        try await Task.sleep(for: .milliseconds(200))

        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let server = LedgerServer(service: service, store: store, host: "127.0.0.1", port: 0, logger: logger, metrics: { [] })
        let (ports, cont) = AsyncStream.makeStream(of: Int.self)
        let serving = Task { try await server.run { cont.yield($0) } }
        defer { serving.cancel() }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next() else { throw PlexusError(.io, "the ledger did not start") }
        let ledger = LedgerClient(baseURL: "http://127.0.0.1:\(port)")
        let explorer = try Explorer(ledger: ledger)
        benchProgress("following the chain")
        try await explorer.catchUp()
        let status = try await ledger.status()
        guard let last = settles.last, let settled = try await ledger.transaction(last.hash) else {
            throw PlexusError(.notFound, "the seeded ledger lacks its last settlement")
        }
        // A week of history at a sample a minute: the network's figures each time, every node's
        // figures changing every half hour.
        benchProgress("seeding a week of history")
        let minute: UInt64 = 60_000, start = UInt64(Date().timeIntervalSince1970 * 1_000) - 7 * 1_440 * minute
        let figureIds = ["height", "block-time", "tx-rate", "requests", "tokens", "nodes", "stake", "escrow", "treasury", "verifiers", "passes", "frauds", "disputes"]
        for m in UInt64(0)..<(7 * 1_440) {
            var values: [String: Double] = [:]
            for (i, id) in figureIds.enumerated() { values[id] = Double((m &* 31 &+ UInt64(i) &* 17) % 1_000) }
            if m % 30 == 0 {
                for (i, o) in owners.enumerated() {
                    for f in ["stake", "price", "ttft", "tps", "served"] { values["node/\(o.address.text)/\(f)"] = Double((m &+ UInt64(i)) % 97) }
                }
            }
            try explorer.record(at: start + m * minute, values)
        }
        let pages: [(String, String)] = [
            ("overview", "/"), ("chart", "/charts/requests?range=week"), ("node", "/nodes/\(owners[0].address.text)?range=week"), ("blocks", "/blocks"), ("block", "/blocks/\(settled.height)"), ("transaction", "/tx/\(last.hash.hex)"),
            ("account", "/accounts/\(requestors[0].address.text)"), ("nodes", "/nodes"), ("nodes by uptime", "/nodes?sort=uptime"),
            ("request", "/requests/\(ids[ids.count / 2].hex)"), ("governance", "/governance"), ("markets", "/markets"),
            ("search", "/search?q=\(ids[1].hex)"),
        ]
        let handler = ExplorerServer(explorer: explorer)
        var times: [PageTime] = []
        for (name, path) in pages {
            benchProgress("timing \(name)")
            let parts = path.split(separator: "?", maxSplits: 1).map(String.init)
            let request = HTTPRequestIn(method: .GET, path: parts[0], query: parts.count > 1 ? parts[1] : nil)
            var ms: [Double] = []
            for round in 0..<(rounds + 3) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let answer = await handler.handle(request)
                let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                if case let .full(status, _, body) = answer, status >= 400 {
                    throw PlexusError(.io, "\(path) answered \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
                }
                if round >= 3 { ms.append(t) }
            }
            ms.sort()
            func q(_ p: Double) -> Double { ms[min(ms.count - 1, Int((p * Double(ms.count)).rounded(.up)) - 1)] }
            times.append(PageTime(page: name, path: path, p50Ms: q(0.5), p99Ms: q(0.99), maxMs: ms.last ?? 0))
        }
        await service.stop()
        let result = Result(nodes: nodes, receipts: receipts, rounds: rounds, blocks: status.height, pages: times,
                            worstP99Ms: times.map(\.p99Ms).max() ?? 0)
        if json { return try printJSON(result) }
        for t in times { print(String(format: "%-16@ p50 %7.1f ms  p99 %7.1f ms", t.page as NSString, t.p50Ms, t.p99Ms)) }
    }
}
