import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Create, run and verify a ledger.",
        subcommands: [Init.self, Start.self, Verify.self, Snapshot.self, Params.self, Status.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a genesis file.")

        @Option(name: .long, help: "Where to write the genesis JSON.") var out: String = "genesis.json"
        @Option(name: .long, help: "Chain id carried by every transaction.") var chainId: String = "plexus-local"
        @Option(name: .long, help: "Orderer key file; created if missing.") var ordererKey: String
        @Option(name: .long, help: "ADDRESS=PLX initial balance (repeatable).") var fund: [String] = []
        @Option(name: .long, help: "ADDRESS=PLX initial stake (repeatable).") var stake: [String] = []
        @Option(name: .long, help: "NAME=VALUE parameter override (repeatable).") var param: [String] = []
        @Option(name: .long, help: "A replica's key file or address that may seal blocks of a replicated ledger (repeatable; see `ledger start --order etcd`).") var sealer: [String] = []
        @Flag(name: .long, help: "Overwrite an existing genesis file.") var force = false

        func run() async throws {
            if !force && FileManager.default.fileExists(atPath: out) {
                throw ValidationError("\(out) exists; pass --force to overwrite it")
            }
            let orderer: KeyPair
            if FileManager.default.fileExists(atPath: ordererKey) {
                orderer = try KeyFile.read(ordererKey)
            } else {
                orderer = KeyPair()
                try KeyFile.write(orderer, to: ordererKey)
            }
            var allocations: [Address: Genesis.Allocation] = [:]
            for (list, isStake) in [(fund, false), (stake, true)] {
                for item in list {
                    let (a, v) = try Self.pair(item)
                    let address = try Address(a)
                    let amount = try Amount(parsing: v)
                    var alloc = allocations[address] ?? Genesis.Allocation(address: address, balance: .zero)
                    if isStake { alloc.stake = try (alloc.stake ?? .zero).adding(amount) } else { alloc.balance = try alloc.balance.adding(amount) }
                    allocations[address] = alloc
                }
            }
            let params = try Self.parameters(param)
            let sealers = try sealer.map { s in
                FileManager.default.fileExists(atPath: s) ? try KeyFile.read(s).address : try Address(s)
            }
            let genesis = Genesis(chainId: chainId, timeMillis: SystemClock().nowMillis(), orderer: orderer.address,
                                  params: params, accounts: allocations.keys.sorted().compactMap { allocations[$0] },
                                  sealers: sealers.isEmpty ? nil : sealers)
            _ = try genesis.initialState()
            try Data(genesis.json()).write(to: URL(fileURLWithPath: out))
            print("genesis for chain \(chainId) written to \(out) (hash \(genesis.hash))")
        }

        /// `NAME=VALUE` overrides, each a whole number.
        static func parameters(_ items: [String]) throws -> [String: UInt64] {
            var params: [String: UInt64] = [:]
            for item in items {
                let (n, v) = try pair(item)
                guard let value = UInt64(v) else { throw ValidationError("parameter \(n): '\(v)' is not a whole number") }
                params[n] = value
            }
            return params
        }

        static func pair(_ s: String) throws -> (String, String) {
            let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("expected NAME=VALUE, got '\(s)'") }
            return (parts[0], parts[1])
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a ledger and its HTTP API: solo-ordered, or one replica of a ledger ordered through etcd.")

        @Option(name: .long, help: "Data directory (database).") var data: String?
        @Option(name: .long, help: "Genesis file, used on first start.") var genesis: String?
        @Option(name: .long, help: "Orderer key file (default: DATA/orderer.json).") var key: String?
        @Option(name: .long, help: "Address to listen on.") var host: String = "127.0.0.1"
        @Option(name: .long, help: "Port to listen on (0 picks a free one).") var port: Int = 7700
        @Option(name: .long, help: "Longest wait before pending transactions are sealed, in ms.") var blockInterval: Int = 100
        @Option(name: .long, help: "Write the bound port to this file once listening.") var portFile: String?
        @Option(name: .long, help: "Seal an empty block after this many ms without one (0: only blocks with transactions; default 0 solo, 1000 with --order etcd).") var heartbeatMs: Int?
        @Flag(name: .long, help: "Development chain: create keys and a genesis funding your default key.") var dev = false
        @Option(name: .long, help: "With --dev: NAME=VALUE parameter override of the development genesis (repeatable).") var param: [String] = []
        @Option(name: .long, help: "Who orders blocks: solo (this process) or etcd (a replica; blocks in etcd, any replica may seal).") var order: String = "solo"
        @Option(name: .long, help: "With --order etcd: the etcd members' client URLs, comma-separated.") var etcd: String?
        @Option(name: .long, help: "With --order etcd: this replica's URL as other replicas reach it (default http://HOST:PORT).") var publicURL: String?
        @Option(name: .long, help: "With --order etcd: the sealer lease, in seconds.") var leaseSeconds: Int = 2
        @Option(name: .long, help: "With --order etcd: the largest block, in bytes (below etcd's --max-request-bytes).") var maxBlockBytes: Int = 1_000_000
        @Option(name: .long, help: "With --order etcd: log entries etcd keeps behind the tip; older ones are pruned once every live replica applied them.") var retainEntries: Int = 10_000
        @Option(name: .long, help: "With --order etcd: start an empty data directory from this signed snapshot (a replica's URL, or a file from `ledger snapshot`) instead of replaying from genesis.") var snapshot: String?
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard (1...60_000).contains(blockInterval) else { throw ValidationError("--block-interval must be 1...60000 ms") }
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
            guard data != nil || dev else { throw ValidationError("give --data DIR, or --dev for a development chain") }
            guard param.isEmpty || dev else { throw ValidationError("--param shapes a development genesis; for others see `plexus ledger init --param`") }
            guard order == "solo" || order == "etcd" else { throw ValidationError("--order is solo or etcd") }
            guard order == "solo" || (etcd != nil && !dev) else { throw ValidationError("--order etcd needs --etcd URL[,URL…] and a --genesis listing its sealers (not --dev)") }
            guard (1...60).contains(leaseSeconds) else { throw ValidationError("--lease-seconds must be 1...60") }
            guard (4_096...64 << 20).contains(maxBlockBytes) else { throw ValidationError("--max-block-bytes must be 4096...67108864") }
            guard (1...100_000_000).contains(retainEntries) else { throw ValidationError("--retain-entries must be 1...100000000") }
            guard snapshot == nil || order == "etcd" else { throw ValidationError("--snapshot starts a replica (--order etcd)") }
        }

        func run() async throws {
            Bootstrap.run(level: log.level)
            StopSignals.followParent()
            let logger = Logger(label: "plexus.ledger")
            let dir = data ?? PlexusHome.path + "/dev/ledger"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let keyPath = key ?? dir + "/orderer.json"
            let store = try BlockStore(path: dir + "/ledger.sqlite")
            if try !store.isInitialized() {
                let g: Genesis
                if let genesis {
                    g = try Genesis.read(genesis)
                } else if dev {
                    g = try Self.devGenesis(ordererKeyPath: keyPath, params: try Init.parameters(param))
                    _ = try g.resolvedParams()
                    try Data(g.json()).write(to: URL(fileURLWithPath: dir + "/genesis.json"))
                } else {
                    throw ValidationError("\(dir) holds no ledger yet; pass --genesis FILE (see `plexus ledger init`)")
                }
                try store.initialize(genesis: g)
                logger.notice("ledger initialised", metadata: ["chain": "\(g.chainId)", "genesis": "\(g.hash)"])
            }
            if let snapshot {
                if try store.height() == 0 {
                    let s = try await Snapshot.load(snapshot)
                    _ = try s.check(genesis: try store.genesis())
                    try store.install(s)
                    logger.notice("started from a snapshot", metadata: ["height": "\(s.height)", "entry": "\(s.slot)", "root": "\(s.stateRoot)", "signer": "\(s.signer.short)"])
                } else {
                    logger.notice("the data directory holds blocks; --snapshot is for an empty one and is not used")
                }
            }
            let signer = try KeyFile.read(keyPath)
            let replicated = order == "etcd"
            let service = try LedgerService(store: store, signer: signer, blockInterval: .milliseconds(blockInterval),
                                            replicated: replicated, logger: logger)
            if let heartbeatMs, heartbeatMs > 0, !replicated { await service.setHeartbeat(.milliseconds(heartbeatMs)) }
            let status = await service.status()
            let server = LedgerServer(service: service, store: store, host: host, port: port, logger: logger,
                                      metrics: { Bootstrap.metricsText() })
            let portFile = self.portFile
            let host = self.host
            let replica = Locked<LedgerReplica?>(nil)
            let etcdEndpoints = (etcd ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            let publicURL = self.publicURL, leaseSeconds = self.leaseSeconds, heartbeatMs = self.heartbeatMs, maxBlockBytes = self.maxBlockBytes, retainEntries = self.retainEntries
            try await server.run { bound in
                if replicated {
                    var config = LedgerReplica.Config(prefix: "plexus/\(status.chainId)/", publicURL: publicURL ?? "http://\(host):\(bound)")
                    config.leaseSeconds = leaseSeconds
                    let beat = heartbeatMs ?? 1_000
                    config.heartbeat = beat > 0 ? .milliseconds(beat) : nil
                    config.maxBlockBytes = maxBlockBytes
                    config.retainEntries = UInt64(retainEntries)
                    let r = LedgerReplica(service: service, etcd: EtcdClient(endpoints: etcdEndpoints), signer: signer, config: config)
                    replica.value = r
                    await r.start()
                }
                logger.notice("ledger listening", metadata: ["address": "http://\(host):\(bound)", "chain": "\(status.chainId)", "height": "\(status.height)",
                                                            "order": "\(replicated ? "etcd" : "solo")"])
                if let portFile {
                    try? AtomicFile.write(Array("\(bound)\n".utf8), to: portFile)
                }
            }
            await replica.value?.stop()
            if let failure = await service.failed { throw failure }
        }

        /// A development genesis: a fresh orderer key and 1,000,000 PLX for the default key.
        static func devGenesis(ordererKeyPath: String, params: [String: UInt64] = [:]) throws -> Genesis {
            let orderer = KeyPair()
            try KeyFile.write(orderer, to: ordererKeyPath, overwrite: true)
            let user: KeyPair
            if FileManager.default.fileExists(atPath: PlexusHome.defaultKey) {
                user = try KeyFile.read(PlexusHome.defaultKey)
            } else {
                user = KeyPair()
                try KeyFile.write(user, to: PlexusHome.defaultKey)
            }
            print("development chain: \(user.address) (key \(PlexusHome.defaultKey)) holds 1000000 PLX; model \(ModelStore.smolLM2.name) is listed")
            return Genesis(chainId: "plexus-dev", timeMillis: SystemClock().nowMillis(), orderer: orderer.address, params: params,
                           accounts: [.init(address: user.address, balance: try .plx(1_000_000))],
                           models: [try ModelCard.defaultModel(creator: user.address)])
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay every block from genesis, checking signatures, links and state roots.")

        @Option(name: .long, help: "Data directory.") var data: String
        @Option(name: .long, help: "A snapshot file (`ledger snapshot`) to check against the replay: the state at its height must hash to its root, after its tip block.") var snapshot: String?
        @Flag(name: .long, help: "Print the result as JSON.") var json = false

        struct Report: Codable {
            var ok: Bool
            var height: UInt64
            var transactions: Int
            var replayedStateRoot: Hash256
            var headerStateRoot: Hash256
            var storedStateRoot: Hash256
            var supplyConserved: Bool
            /// The height of the snapshot this data directory started from (replayed from there), if it did.
            var startedFromSnapshot: UInt64?
            /// With --snapshot: whether the replay reached the snapshot's height with its block hash and state root.
            var snapshotMatches: Bool?
        }

        func run() async throws {
            let store = try BlockStore(path: data + "/ledger.sqlite")
            let check = try snapshot.map { path -> LedgerSnapshot in
                guard let d = FileManager.default.contents(atPath: path) else { throw PlexusError(.notFound, "no snapshot file \(path)") }
                return try LedgerSnapshot(canonicalBytes: Array(d))
            }
            let report = try Self.verify(store, snapshot: check)
            if json {
                try printJSON(report)
            } else {
                let from = report.startedFromSnapshot.map { " (replayed from the snapshot at height \($0))" } ?? ""
                let against = report.snapshotMatches.map { $0 ? "; the snapshot matches the replay" : "; the snapshot does NOT match the replay" } ?? ""
                print("\(report.ok ? "ok" : "MISMATCH"): \(report.height) blocks\(from), \(report.transactions) transactions, state root \(report.replayedStateRoot)\(against)")
            }
            if !report.ok { throw ExitCode(1) }
        }

        static func verify(_ store: BlockStore, snapshot check: LedgerSnapshot? = nil) throws -> Report {
            let snap = try store.load()
            var chain: Chain
            let start = try store.startingSnapshot()
            if let start {
                // Started from a snapshot: its rows, checked, and the blocks after it.
                chain = Chain(state: try start.check(genesis: snap.genesis), tipHash: start.tipHash(genesis: snap.genesis), orderer: snap.genesis.orderer)
            } else {
                chain = try Chain(genesis: snap.genesis)
            }
            let height = snap.state.height
            var txs = 0
            var matches: Bool?
            if let check {
                _ = try check.check(genesis: snap.genesis)
                if check.height > height || check.height < (start?.height ?? 0) { matches = false }
            }
            func compare() {
                guard let check, check.height == chain.state.height else { return }
                matches = chain.stateRoot() == check.stateRoot && chain.tipHash == check.tipHash(genesis: snap.genesis)
            }
            compare()
            var h: UInt64 = (start?.height ?? 0) + 1
            while h <= height {
                guard let block = try store.block(at: h) else {
                    throw PlexusError(.invalidBlock, "block \(h) is missing")
                }
                if block.header.ordered {
                    if let refusal = chain.refusal(of: block, sealers: Set(snap.genesis.sealers ?? [])) {
                        throw PlexusError(.invalidBlock, refusal)
                    }
                    _ = try chain.applyOrdered(block: block)
                } else {
                    _ = try chain.apply(block: block)
                }
                txs += block.transactions.count
                compare()
                h += 1
            }
            var stored = snap.state
            let storedRoot = stored.commit().root
            let replayed = chain.stateRoot()
            // An ordered block's header carries the root before it: the stored one is checked against the replay.
            let header = snap.tip.map { $0.ordered ? storedRoot : $0.stateRoot } ?? replayed
            let held = try chain.state.circulatingTotal()
            let ok = replayed == header && replayed == storedRoot && chain.tipHash == snap.tipHash && held == chain.state.totalSupply && matches != false
            return Report(ok: ok, height: height, transactions: txs, replayedStateRoot: replayed, headerStateRoot: header,
                          storedStateRoot: storedRoot, supplyConserved: held == chain.state.totalSupply,
                          startedFromSnapshot: start?.height, snapshotMatches: matches)
        }
    }

    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch a replica's signed state snapshot (for `ledger start --snapshot` or `ledger verify --snapshot`).")
        @OptionGroup var ledger: LedgerURLOptions
        @Option(name: .long, help: "Where to write it.") var out: String
        @Flag(name: .long, help: "Print the result as JSON.") var json = false

        struct Report: Codable {
            var height: UInt64
            var slot: UInt64
            var stateRoot: Hash256
            var signer: Address
            var accounts: Int
            var records: Int
            var bytes: Int
        }

        func run() async throws {
            let s = try await Self.load(ledger.ledger)
            let bytes = s.canonicalBytes
            try AtomicFile.write(bytes, to: out)
            let report = Report(height: s.height, slot: s.slot, stateRoot: s.stateRoot, signer: s.signer, accounts: s.accounts.count,
                                records: s.records.count, bytes: bytes.count)
            if json { try printJSON(report) } else {
                print("snapshot at height \(s.height) (log entry \(s.slot)), state root \(s.stateRoot), signed by \(s.signer): \(bytes.count) bytes in \(out)")
            }
        }

        /// A snapshot from a ledger's `GET /v1/snapshot` (an http URL) or a file.
        static func load(_ source: String) async throws -> LedgerSnapshot {
            let bytes: [UInt8]
            if source.hasPrefix("http://") || source.hasPrefix("https://") {
                let base = source.split(separator: ",").first.map(String.init) ?? source
                var url = base
                while url.hasSuffix("/") { url.removeLast() }
                let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/v1/snapshot"), timeout: .seconds(120))
                let body = try await response.body.collect(upTo: 1 << 30)
                guard response.status == .ok else { throw PlexusError(.unavailable, "\(url) answered \(response.status.code) for its snapshot") }
                bytes = Array(buffer: body)
            } else {
                guard let data = FileManager.default.contents(atPath: source) else { throw PlexusError(.notFound, "no snapshot file \(source)") }
                bytes = Array(data)
            }
            return try LedgerSnapshot(canonicalBytes: bytes)
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each replica's height, block hash, state root, role and lag (one URL for a solo ledger).")
        @OptionGroup var ledger: LedgerURLOptions
        @Flag(name: .long, help: "Print the result as JSON.") var json = false

        struct Row: Codable {
            var url: String
            var reachable: Bool
            var status: LedgerService.Status?
            var error: String?
        }

        func run() async throws {
            var rows: [Row] = []
            for url in ledger.ledger.split(separator: ",").map(String.init) {
                do {
                    rows.append(Row(url: url, reachable: true, status: try await LedgerClient(baseURL: url, http: .failFast, timeout: .seconds(5)).status()))
                } catch {
                    rows.append(Row(url: url, reachable: false, error: "\(error)"))
                }
            }
            if json { try printJSON(["replicas": rows]); return }
            for r in rows {
                guard let s = r.status else { print("\(r.url)  unreachable: \(r.error ?? "")"); continue }
                let role = s.replica.map { "\($0.role)\($0.healthy ? "" : " HALTED: \($0.failure ?? "")")  lag \($0.lagBlocks) blocks \($0.lagMillis) ms" } ?? "solo"
                print("\(r.url)  height \(s.height)  block \(s.blockHash.hex.prefix(16))  state \(s.stateRoot.hex.prefix(16))  \(role)")
            }
        }
    }

    struct Params: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a ledger's parameters with their bounds.")
        @OptionGroup var ledger: LedgerURLOptions

        func run() async throws {
            let view = try await LedgerClient(baseURL: ledger.ledger).params()
            for p in view.params {
                print("\(p.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(p.value)  [\(p.min)...\(p.max)]  \(p.summary)")
            }
        }
    }
}
