import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// A ledger of three replicas ordered through a three-member etcd cluster, with the real
/// binaries: crash faults under a stream of `wait=commit` transfers, entries written into
/// etcd by someone other than a sealer, and the replicas' agreement afterwards.
@Suite(.serialized) struct ReplicatedLedgerTests {
    /// Three replicas of one genesis on `cluster`, each a `plexus ledger start --order etcd`.
    final class Replicas: @unchecked Sendable {
        // Invariant: used from the test's task only.
        let dir: String
        let cluster: EtcdCluster
        let keys: [KeyPair]
        let clients: [KeyPair]
        /// Accounts that send batches of one-unit transfers to the sink (to fill blocks).
        let fillers: [KeyPair]
        let sink = KeyPair()
        let genesis: Genesis
        var processes: [PlexusProcess?] = [nil, nil, nil]
        var ports: [Int] = [0, 0, 0]

        init(dir: String, etcdMembers: Int = 3, clients: Int = 4, heartbeatMs: Int = 0, retainEntries: Int = 10_000, quotaBytes: Int? = nil,
             fillers: Int = 0) throws {
            self.dir = dir
            cluster = try EtcdCluster(size: etcdMembers, directory: dir + "/etcd", quotaBytes: quotaBytes)
            self.retainEntries = retainEntries
            keys = (0..<3).map { _ in KeyPair() }
            self.clients = (0..<clients).map { _ in KeyPair() }
            self.fillers = (0..<fillers).map { _ in KeyPair() }
            genesis = Genesis(chainId: "plexus-replicated", timeMillis: 1_000, orderer: keys[0].address,
                              accounts: try (self.clients + self.fillers).map { .init(address: $0.address, balance: try .plx(1_000)) },
                              sealers: keys.map(\.address))
            try Data(genesis.json()).write(to: URL(fileURLWithPath: dir + "/genesis.json"))
            for (i, k) in keys.enumerated() { try KeyFile.write(k, to: dir + "/replica-\(i).json") }
            self.heartbeatMs = heartbeatMs
        }
        let heartbeatMs: Int
        let retainEntries: Int

        var urls: [String] { ports.map { "http://127.0.0.1:\($0)" } }
        var ledger: LedgerClient { LedgerClient(baseURL: urls.joined(separator: ","), timeout: .seconds(20)) }

        func start() async throws {
            try cluster.start()
            try await cluster.waitReady()
            for i in 0..<3 { try await startReplica(i) }
        }

        func startReplica(_ i: Int, _ extra: [String] = []) async throws {
            try? FileManager.default.removeItem(atPath: dir + "/replica-\(i).port")
            let p = try PlexusProcess(["ledger", "start", "--order", "etcd", "--etcd", cluster.clientURLs.joined(separator: ","),
                                       "--data", dir + "/data-\(i)", "--genesis", dir + "/genesis.json", "--key", dir + "/replica-\(i).json",
                                       "--port", String(ports[i]), "--port-file", dir + "/replica-\(i).port",
                                       "--heartbeat-ms", String(heartbeatMs), "--lease-seconds", "2",
                                       "--retain-entries", String(retainEntries)] + extra, logDirectory: dir)
            processes[i] = p
            ports[i] = try await PlexusProcess.waitForPort(file: dir + "/replica-\(i).port", seconds: 60, process: p)
        }

        func status(_ i: Int) async -> LedgerService.Status? {
            try? await LedgerClient(baseURL: urls[i], timeout: .seconds(3)).status()
        }

        /// The replica that seals now, if one does.
        func sealer() async -> Int? {
            for i in 0..<3 where processes[i]?.process.isRunning == true {
                if await status(i)?.replica?.role == "sealer" { return i }
            }
            return nil
        }

        func waitForSealer(seconds: Double = 20) async throws -> Int {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let s = await sealer() { return s }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw PlexusError(.io, "no replica took the sealer's lease")
        }

        /// Waits until every replica reports the same height, block and state root; that status.
        func agreement(seconds: Double = 30) async throws -> LedgerService.Status {
            let deadline = Date().addingTimeInterval(seconds)
            var last: [LedgerService.Status?] = []
            while Date() < deadline {
                last = []
                for i in 0..<3 { last.append(await status(i)) }
                if let first = last[0], last.allSatisfy({ $0?.height == first.height && $0?.blockHash == first.blockHash && $0?.stateRoot == first.stateRoot }) {
                    return first
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw PlexusError(.stateMismatch, "replicas disagree: \(last.map { $0.map { "\($0.height) \($0.blockHash.hex.prefix(8)) \($0.stateRoot.hex.prefix(8))" } ?? "unreachable" })")
        }

        func stop() {
            for p in processes { p?.terminate() }
            cluster.stop()
        }
    }

    /// Each client sends transfers of 1 PLX to one sink, `wait=commit`, to the replicas in
    /// turn (the client fails over), until `stop`; the hashes the ledger acknowledged.
    static func traffic(_ r: Replicas, stop: OnceFlag) async -> [Hash256] {
        await withTaskGroup(of: [Hash256].self) { group in
            for (c, key) in r.clients.enumerated() {
                let urls = r.urls
                group.addTask {
                    let ledger = LedgerClient(baseURL: (0..<3).map { urls[(c + $0) % 3] }.joined(separator: ","), timeout: .seconds(20))
                    var acked: [Hash256] = []
                    var nonce: UInt64?
                    while !stop.isSet {
                        do {
                            if nonce == nil { nonce = try await ledger.account(key.address).nonce }
                            let tx = Transaction(chainId: "plexus-replicated", from: key, nonce: nonce!, fee: Amount(units: 1_000),
                                                 body: .transfer(to: r.sink.address, amount: try .plx(1)))
                            let receipt = try await ledger.submit(tx, waitForCommit: true)
                            if receipt.committed { acked.append(receipt.hash) }
                            nonce! += 1
                        } catch {
                            // Unacknowledged: it may still be ordered; the next nonce comes from the ledger.
                            nonce = nil
                            try? await Task.sleep(for: .milliseconds(100))
                        }
                    }
                    return acked
                }
            }
            var all: [Hash256] = []
            for await a in group { all += a }
            return all
        }
    }

    /// After a run: every acknowledged transfer is in the chain, each valid transfer counted
    /// exactly once (the sink holds one PLX per client nonce used), every replica agrees, and
    /// `plexus ledger verify` replays each replica's blocks to the same root.
    static func check(_ r: Replicas, acked: [Hash256]) async throws {
        let agreed = try await r.agreement()
        let ledger = r.ledger
        var used: UInt64 = 0
        for c in r.clients { used += try await ledger.account(c.address).nonce }
        var units: UInt64 = 0
        for f in r.fillers { units += try await ledger.account(f.address).nonce }
        let sink = try await ledger.account(r.sink.address)
        #expect(sink.balance == Amount(units: used * Amount.unitsPerPLX + units), "sink \(sink.balance) for \(used) transfers and \(units) units")
        #expect(Set(acked).count == acked.count)
        #expect(UInt64(acked.count) <= used)
        // A replica started from a snapshot holds the blocks from the snapshot's height on.
        var froms: [UInt64] = []
        for url in r.urls { froms.append(try await LedgerClient(baseURL: url).status().historyFrom ?? 0) }
        let full = LedgerClient(baseURL: r.urls[try #require(froms.firstIndex(of: 0))])
        for (i, url) in r.urls.enumerated() {
            let one = LedgerClient(baseURL: url)
            var probed = 0
            for h in acked.shuffled() where probed < 40 {
                if froms[i] > 0, let at = try await full.transaction(h), at.height < froms[i] { continue }
                #expect(try await one.transaction(h) != nil, "replica \(i) lacks acknowledged \(h)")
                probed += 1
            }
        }
        for i in 0..<3 { r.processes[i]?.terminate() }
        var roots: Set<Hash256> = []
        for i in 0..<3 {
            let (status, out) = try await PlexusProcess.run(["ledger", "verify", "--data", r.dir + "/data-\(i)", "--json"], logDirectory: r.dir)
            #expect(status == 0, "replica \(i): \(out.suffix(800))")
            let report = try JSONSerialization.jsonObject(with: Data(out.utf8.drop { $0 != UInt8(ascii: "{") })) as? [String: Any]
            #expect(report?["height"] as? Int == Int(agreed.height))
            if let root = report?["replayedStateRoot"] as? String { roots.insert(try Hash256(hex: root)) }
        }
        #expect(roots == [agreed.stateRoot], "\(roots) vs \(agreed.stateRoot)")
    }

    @Test(.enabled(if: EtcdCluster.binary() != nil, "needs etcd"))
    func crashFaultsUnderLoad() async throws {
        let dir = try TemporaryDirectory("plexus-replicated")
        defer { dir.remove() }
        let r = try Replicas(dir: dir.path)
        defer { r.stop() }
        try await r.start()
        _ = try await r.waitForSealer()

        let stop = OnceFlag()
        let traffic = Task { await Self.traffic(r, stop: stop) }
        func progress(_ what: String) async throws {
            // The chain keeps committing through (or after) each fault.
            let before = await r.status((0..<3).first { r.processes[$0]?.process.isRunning == true } ?? 0)?.height ?? 0
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                for i in 0..<3 where r.processes[i]?.process.isRunning == true {
                    if let h = await r.status(i)?.height, h > before + 3 { return }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("no progress after \(what)")
        }
        try await Task.sleep(for: .seconds(1))

        var faults: [String] = ["kill-sealer", "kill-follower", "kill-etcd-leader", "stop-sealer"]
        var rng = SystemRandomNumberGenerator()
        faults.shuffle(using: &rng)
        for fault in faults {
            switch fault {
            case "kill-sealer":
                let s = try await r.waitForSealer()
                r.processes[s]?.kill9()
                try await progress("killing the sealer")
                try await r.startReplica(s)
            case "kill-follower":
                let s = try await r.waitForSealer()
                let f = (s + 1 + Int.random(in: 0...1)) % 3
                r.processes[f]?.kill9()
                try await Task.sleep(for: .seconds(1))
                try await r.startReplica(f)
                try await progress("restarting a follower")
            case "kill-etcd-leader":
                guard let l = await r.cluster.leader() else { Issue.record("no etcd leader"); continue }
                r.cluster.signal(l, SIGKILL)
                try await progress("killing the etcd leader")
                try r.cluster.start(l)
            default:
                // Paused past its lease: another replica seals, and the paused one, resumed,
                // must not seal a conflicting block (the append guard refuses it).
                let s = try await r.waitForSealer()
                let pid = try #require(r.processes[s]?.process.processIdentifier)
                kill(pid, SIGSTOP)
                try await progress("pausing the sealer")
                kill(pid, SIGCONT)
            }
            try await Task.sleep(for: .seconds(1))
        }

        // Quorum lost: writes stop with a clear 503, and resume when it returns.
        let leader = await r.cluster.leader() ?? 0
        let down = [(leader + 1) % 3, (leader + 2) % 3]
        for m in down { r.cluster.signal(m, SIGKILL) }
        let probe = r.clients[0]
        var refused: PlexusError?
        let started = Date()
        do {
            let ledger = LedgerClient(baseURL: r.urls[0], timeout: .seconds(30))
            let n = try await ledger.account(probe.address).nonce
            _ = try await ledger.submit(Transaction(chainId: "plexus-replicated", from: probe, nonce: n + 1_000, fee: Amount(units: 1_000),
                                                    body: .transfer(to: r.sink.address, amount: try .plx(1))), waitForCommit: true)
        } catch let e as PlexusError {
            refused = e
        }
        #expect(refused?.code == .unavailable, "\(String(describing: refused))")
        #expect(Date().timeIntervalSince(started) < 25)
        for m in down { try r.cluster.start(m) }
        try await progress("quorum returning")

        stop.set()
        let acked = await traffic.value
        #expect(acked.count > 20, "only \(acked.count) transfers acknowledged")
        try await Self.check(r, acked: acked)
    }

    @Test(.enabled(if: EtcdCluster.binary() != nil, "needs etcd"))
    func entriesNotSealedProperlyAreRefusedByEveryReplica() async throws {
        let dir = try TemporaryDirectory("plexus-byzantine")
        defer { dir.remove() }
        let r = try Replicas(dir: dir.path, etcdMembers: 1, clients: 1)
        defer { r.stop() }
        try await r.start()
        _ = try await r.waitForSealer()
        let ledger = r.ledger
        let client = r.clients[0]
        func transfer(_ nonce: UInt64) async throws -> LedgerService.Receipt {
            try await ledger.submit(Transaction(chainId: "plexus-replicated", from: client, nonce: nonce, fee: Amount(units: 1_000),
                                                body: .transfer(to: r.sink.address, amount: try .plx(1))), waitForCommit: true)
        }
        _ = try await transfer(0)
        let status = try await r.agreement()
        let etcd = EtcdClient(endpoints: r.cluster.clientURLs)
        let prefix = "plexus/plexus-replicated/"
        // No heartbeat: the log ends at the last block until something is written.
        let page = try await etcd.range(Array((prefix + "blk/").utf8), end: EtcdClient.prefixEnd(Array((prefix + "blk/").utf8)))
        var slot = UInt64(page.kvs.count)
        let tip = try #require(try await ledger.block(status.height))
        func header(prev: Hash256 = tip.hash, root: Hash256 = status.stateRoot, by: KeyPair, txs: [Transaction]) -> BlockHeader {
            BlockHeader(chainId: "plexus-replicated", height: status.height + 1, previousHash: prev, timeMillis: status.timeMillis + 10,
                        txCount: UInt32(txs.count), txRoot: Block.txRoot(txs.map(\.hash)), stateRoot: root, orderer: by.address, ordered: true)
        }
        func write(_ h: BlockHeader, signer: KeyPair, _ txs: [Transaction]) async throws {
            slot += 1
            let b = Block(header: h, signature: signer.sign(h.hash.bytes), transactions: txs)
            let w = try await etcd.create(LedgerReplica.blockKey(prefix: prefix, slot: slot), b.canonicalBytes,
                                          after: LedgerReplica.blockKey(prefix: prefix, slot: slot - 1))
            #expect(w != .missingPredecessor)
        }
        let good = Transaction(chainId: "plexus-replicated", from: client, nonce: 1, fee: Amount(units: 1_000),
                               body: .transfer(to: r.sink.address, amount: try .plx(1)))
        var forged = good
        forged.signature = KeyPair().sign([1, 2, 3])
        let outsider = KeyPair()
        // Sealed by a key that is not a sealer; a sealer's block with a forged transaction
        // signature; a sealer's block that does not link to the tip.
        try await write(header(by: outsider, txs: [good]), signer: outsider, [good])
        try await write(header(by: r.keys[0], txs: [forged]), signer: r.keys[0], [forged])
        try await write(header(prev: Hash256.of([9]), by: r.keys[1], txs: [good]), signer: r.keys[1], [good])
        // All passed over alike: the chain goes on from the same tip, and the transfer
        // none of them carried is still to be made (its nonce unused).
        let next = try await transfer(1)
        #expect(next.height == status.height + 1)
        let after = try await r.agreement()
        #expect(after.height == status.height + 1)
        #expect(try await ledger.account(r.sink.address).balance == (try .plx(2)))

        // A sealer's block claiming another state root: every replica halts rather than diverge.
        let page2 = try await etcd.range(Array((prefix + "blk/").utf8), end: EtcdClient.prefixEnd(Array((prefix + "blk/").utf8)))
        slot = UInt64(page2.kvs.count)
        let tip2 = try #require(try await ledger.block(after.height))
        let h = BlockHeader(chainId: "plexus-replicated", height: after.height + 1, previousHash: tip2.hash, timeMillis: after.timeMillis + 10,
                            txCount: 0, txRoot: Block.txRoot([]), stateRoot: Hash256.of([7]), orderer: r.keys[2].address, ordered: true)
        try await write(h, signer: r.keys[2], [])
        var halted = 0
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            halted = 0
            for i in 0..<3 where await r.status(i)?.replica?.healthy == false { halted += 1 }
            if halted == 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(halted == 3)
        let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: r.urls[0] + "/health"), timeout: .seconds(5))
        #expect(health.status == .serviceUnavailable)
        let s0 = await r.status(0)
        #expect(s0?.replica?.failure?.contains("height \(after.height + 1)") == true, "\(String(describing: s0?.replica))")
        #expect(s0?.height == after.height)
    }

    /// The first entry etcd still holds under `blk/`, and how many it holds.
    static func log(_ r: Replicas) async throws -> (first: UInt64, count: Int64) {
        let etcd = EtcdClient(endpoints: r.cluster.clientURLs)
        let prefix = Array("plexus/plexus-replicated/blk/".utf8)
        let page = try await etcd.range(prefix, end: EtcdClient.prefixEnd(prefix), limit: 1)
        let first = page.kvs.first.flatMap { UInt64(String(decoding: $0.key.dropFirst(prefix.count), as: UTF8.self)) } ?? 0
        return (first, try await etcd.count(prefix, end: EtcdClient.prefixEnd(prefix)))
    }

    /// The value of a Prometheus sample of replica `i` whose line starts with `name` (summed over its labels).
    static func metric(_ r: Replicas, _ i: Int, _ name: String) async throws -> Double {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: r.urls[i] + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 4 << 20))
        return text.split(separator: "\n").filter { $0.hasPrefix(name) }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    /// Etcd keeps the last entries only: the sealer prunes what every live replica applied
    /// and compacts; a replica stopped while the log moved past it fetches the blocks it
    /// lacks from a peer, checked as log entries are, and ends with the same chain.
    @Test(.enabled(if: EtcdCluster.binary() != nil, "needs etcd"))
    func theLogIsPrunedAndAReplicaLeftBehindCatchesUpFromPeers() async throws {
        let dir = try TemporaryDirectory("plexus-pruned")
        defer { dir.remove() }
        let r = try Replicas(dir: dir.path, clients: 3, retainEntries: 20)
        defer { r.stop() }
        try await r.start()
        let s = try await r.waitForSealer()
        let stop = OnceFlag()
        let traffic = Task { await Self.traffic(r, stop: stop) }
        try await Task.sleep(for: .seconds(2))
        // A follower stopped; its membership key expires with its lease, and the sealer
        // prunes past the last entry it applied.
        let f = (s + 1) % 3
        let left = try #require(await r.status(f)?.replica?.slot)
        r.processes[f]?.kill9()
        let deadline = Date().addingTimeInterval(120)
        var log = try await Self.log(r)
        while log.first <= left + 1, Date() < deadline {
            try await Task.sleep(for: .milliseconds(250))
            log = try await Self.log(r)
        }
        #expect(log.first > left + 1, "the log was not pruned past entry \(left): it starts at \(log.first)")
        // Bounded: the last 20 entries, what accrues between prunes (every 2 s, 64 entries at least), and slack for a loaded machine.
        #expect(log.count <= 20 + 64 + 400, "etcd holds \(log.count) entries")
        try await r.startReplica(f)
        let caughtUp = try await r.agreement(seconds: 60)
        #expect(caughtUp.height > 0)
        let fetched = try await Self.metric(r, f, "plexus_ledger_blocks_fetched_total")
        #expect(fetched > 0)
        print("pruning: the log starts at entry \(log.first) and holds \(log.count) entries; the replica stopped at entry \(left) fetched \(Int(fetched)) blocks from a peer")
        #expect(try await Self.metric(r, (s + 2) % 3, "plexus_ledger_blocks_fetched_total") == 0)

        // The third replica starts afresh from the sealer's signed snapshot and replays from its height.
        let file = dir.path + "/snapshot.bin"
        let (taken, out) = try await PlexusProcess.run(["ledger", "snapshot", "--ledger", r.urls[s], "--out", file, "--json"], logDirectory: dir.path)
        #expect(taken == 0, "\(out.suffix(800))")
        let g = (s + 2) % 3
        r.processes[g]?.kill9()
        try FileManager.default.removeItem(atPath: dir.path + "/data-\(g)")
        try await r.startReplica(g, ["--snapshot", r.urls[s]])
        _ = try await r.agreement(seconds: 60)
        #expect(r.processes[g]?.log.contains("started from a snapshot") == true)
        stop.set()
        let acked = await traffic.value
        #expect(acked.count > 20, "only \(acked.count) transfers acknowledged")
        try await Self.check(r, acked: acked)
        // `ledger verify` replays the fresh replica from its snapshot; the sealer's own chain, from genesis, reaches the snapshot's root.
        let (v1, o1) = try await PlexusProcess.run(["ledger", "verify", "--data", dir.path + "/data-\(g)", "--json"], logDirectory: dir.path)
        #expect(v1 == 0 && o1.contains("startedFromSnapshot"), "\(o1.suffix(800))")
        let (v2, o2) = try await PlexusProcess.run(["ledger", "verify", "--data", dir.path + "/data-\(s)", "--snapshot", file, "--json"], logDirectory: dir.path)
        #expect(v2 == 0 && o2.contains("\"snapshotMatches\" : true"), "\(o2.suffix(800))")
    }

    /// Etcd's space quota exhausted (a 4 MB `--quota-backend-bytes`): the sealer's appends
    /// fail with etcd's clear `database space exceeded` (counted as `no_space`), it prunes
    /// the log to its tip, compacts, defragments and clears the alarm, and the chain goes on;
    /// every acknowledged transfer is there once and the replicas agree.
    @Test(.enabled(if: EtcdCluster.binary() != nil, "needs etcd"))
    func anExhaustedSpaceQuotaIsRecoveredByPruningAndCompaction() async throws {
        let dir = try TemporaryDirectory("plexus-quota")
        defer { dir.remove() }
        let r = try Replicas(dir: dir.path, etcdMembers: 1, clients: 2, retainEntries: 100_000_000, quotaBytes: 4 << 20, fillers: 4)
        defer { r.stop() }
        try await r.start()
        let s = try await r.waitForSealer()
        let stop = OnceFlag()
        let traffic = Task { await Self.traffic(r, stop: stop) }
        // Big blocks fill the quota quickly: batches of transfers from accounts of their own.
        let ledger = r.ledger
        let filling = Task {
            await withTaskGroup(of: Void.self) { group in
                for k in r.fillers {
                    group.addTask {
                        var nonce: UInt64 = 0
                        while !stop.isSet {
                            let txs = (0..<64).map { i in
                                Transaction(chainId: "plexus-replicated", from: k, nonce: nonce + UInt64(i), fee: Amount(units: 1_000),
                                            body: .transfer(to: r.sink.address, amount: Amount(units: 1)))
                            }
                            if let results = try? await ledger.submitAll(txs, waitForCommit: true) {
                                nonce += UInt64(results.filter { if case .success = $0 { true } else { false } }.count)
                            } else {
                                try? await Task.sleep(for: .milliseconds(100))
                            }
                            if let n = try? await ledger.account(k.address).nonce { nonce = n }
                        }
                    }
                }
            }
        }
        let deadline = Date().addingTimeInterval(180)
        var noSpace = 0.0
        while noSpace == 0, Date() < deadline {
            try await Task.sleep(for: .milliseconds(500))
            noSpace = (try? await Self.metric(r, s, "plexus_ledger_etcd_errors_total{kind=\"no_space\"}")) ?? 0
        }
        #expect(noSpace > 0, "the quota was never reached")
        // Recovered: the chain commits again, and etcd holds a pruned log.
        let before = try await ledger.status().height
        var after = before
        let recovered = Date().addingTimeInterval(60)
        while after < before + 20, Date() < recovered {
            try await Task.sleep(for: .milliseconds(250))
            after = (try? await ledger.status().height) ?? after
        }
        #expect(after >= before + 20, "no progress after the quota was reached: \(before) → \(after)")
        let pruned = try await Self.metric(r, s, "plexus_ledger_log_entries_pruned_total")
        #expect(pruned > 0)
        print("quota: \(Int(noSpace)) appends refused for space, \(Int(pruned)) entries pruned; height \(before) → \(after) after recovery; log \(try await Self.log(r))")
        stop.set()
        await filling.value
        let acked = await traffic.value
        #expect(acked.count > 0)
        #expect(r.processes[s]?.log.contains("space quota is exhausted") == true)
        try await Self.check(r, acked: acked)
    }
}
