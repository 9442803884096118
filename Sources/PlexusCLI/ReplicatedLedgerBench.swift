import Dispatch
import Foundation
import PlexusCore
import PlexusLedger

/// `plexus bench ledger --replicas N`: signed transfers committed on every replica of a
/// ledger ordered through an N-member etcd cluster (real processes, real fsync), with the
/// solo orderer's figure from the same run for comparison.
extension LedgerBench {
    struct ReplicatedResult: Codable {
        var benchmark = "ledger-replicated"
        var replicas: Int
        var etcdMembers: Int
        var transactions: Int
        var accounts: Int
        /// Until the slowest replica had applied every transfer.
        var seconds: Double
        var txPerSecond: Double
        var commitLatencyP50Ms: Double
        var commitLatencyP99Ms: Double
        /// The most blocks (and the longest time, as replicas report it) the slowest replica trailed the sealer.
        var maxLagBlocks: UInt64
        var maxLagMs: UInt64
        var blocks: UInt64
        var sealers: Int
        var agreed: Bool
        var solo: Result

        enum CodingKeys: String, CodingKey {
            case benchmark, replicas, transactions, accounts, seconds, blocks, sealers, agreed, solo
            case etcdMembers = "etcd_members"
            case txPerSecond = "tx_per_s"
            case commitLatencyP50Ms = "commit_latency_p50_ms"
            case commitLatencyP99Ms = "commit_latency_p99_ms"
            case maxLagBlocks = "max_lag_blocks"
            case maxLagMs = "max_lag_ms"
        }
    }

    func runReplicated() async throws {
        progress("solo orderer first, with the same transfers")
        let soloResult = try await solo()
        let dir = NSTemporaryDirectory() + "plexus-bench-replicated-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cluster = try EtcdCluster(size: replicas, directory: dir + "/etcd")
        var processes: [Process] = []
        defer {
            for p in processes where p.isRunning { p.terminate() }
            for p in processes { p.waitUntilExit() }
            cluster.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let keys = (0..<accounts).map { KeyPair.deterministic("bench-\($0)") }
        let sealerKeys = (0..<replicas).map { KeyPair.deterministic("bench-replica-\($0)") }
        let genesis = Genesis(chainId: "plexus-bench", timeMillis: 0, orderer: sealerKeys[0].address,
                              accounts: keys.map { .init(address: $0.address, balance: Amount(units: UInt64.max / 2 / UInt64(keys.count))) },
                              sealers: sealerKeys.map(\.address))
        try Data(genesis.json()).write(to: URL(fileURLWithPath: dir + "/genesis.json"))
        progress("starting a \(replicas)-member etcd cluster and \(replicas) replicas")
        try cluster.start()
        try await cluster.waitReady()
        for (i, k) in sealerKeys.enumerated() {
            try KeyFile.write(k, to: dir + "/replica-\(i).json")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: LocalNetwork.executable)
            p.arguments = ["ledger", "start", "--order", "etcd", "--etcd", cluster.clientURLs.joined(separator: ","),
                           "--data", dir + "/data-\(i)", "--genesis", dir + "/genesis.json", "--key", dir + "/replica-\(i).json",
                           "--port", "0", "--port-file", dir + "/replica-\(i).port", "--heartbeat-ms", "0"]
            let log = dir + "/replica-\(i).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: log)
            p.standardOutput = p.standardError
            var env = ProcessInfo.processInfo.environment
            env["PLEXUS_PARENT_PID"] = String(getpid())
            p.environment = env
            try p.run()
            processes.append(p)
        }
        var urls: [String] = []
        for i in 0..<replicas {
            let deadline = Date().addingTimeInterval(60)
            while true {
                if let s = try? String(contentsOfFile: dir + "/replica-\(i).port", encoding: .utf8), let port = Int(s.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    urls.append("http://127.0.0.1:\(port)")
                    break
                }
                guard Date() < deadline, processes[i].isRunning else { throw PlexusError(.io, "replica \(i) did not start (see \(dir)/replica-\(i).log)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let clients = urls.map { LedgerClient(baseURL: $0, timeout: .seconds(60)) }
        let sealerDeadline = Date().addingTimeInterval(30)
        while !(await clients.asyncContains { (try? await $0.status())?.replica?.role == "sealer" }) {
            guard Date() < sealerDeadline else { throw PlexusError(.io, "no replica took the sealer's lease") }
            try await Task.sleep(for: .milliseconds(100))
        }

        progress("signing \(transactions) transfers")
        let txs = signTransfers(keys: keys, chainId: genesis.chainId, fee: try genesis.resolvedParams().minFee)
        let per = LedgerAPI.maxBatchTransactions
        let batches = stride(from: 0, to: txs.count, by: per).map { Array(txs[$0..<min(txs.count, $0 + per)]) }

        progress("submitting \(batches.count) batches of \(per), \(inFlight) in flight, over \(replicas) replicas")
        let lag = Locked((blocks: UInt64(0), millis: UInt64(0)))
        let done = OnceFlag()
        let sampler = Task {
            while !done.isSet {
                var heights: [UInt64] = []
                for c in clients {
                    guard let s = try? await c.status() else { continue }
                    heights.append(s.height)
                    lag.update { $0.millis = max($0.millis, s.replica?.lagMillis ?? 0) }
                }
                if let hi = heights.max(), let lo = heights.min() { lag.update { $0.blocks = max($0.blocks, hi - lo) } }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let next = Locked(0)
        let latencies = Locked<[Double]>([])
        let failures = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for w in 0..<inFlight {
                group.addTask {
                    let client = clients[w % clients.count]
                    while true {
                        let k = next.update { n -> Int in defer { n += 1 }; return n }
                        guard k < batches.count else { return }
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        let results = (try? await client.submitAll(batches[k], waitForCommit: true)) ?? []
                        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                        let bad = results.count == batches[k].count ? results.filter { (try? $0.get()) == nil }.count : batches[k].count
                        if bad > 0 { failures.update { $0 += bad } }
                        latencies.update { $0.append(ms) }
                    }
                }
            }
        }
        // Committed on every replica: all at the height of the last block.
        var agreed = false
        var top: LedgerService.Status?
        let agreeDeadline = Date().addingTimeInterval(60)
        while Date() < agreeDeadline {
            var statuses: [LedgerService.Status] = []
            for c in clients { if let s = try? await c.status() { statuses.append(s) } }
            if statuses.count == clients.count, let f = statuses.first,
               statuses.allSatisfy({ $0.height == f.height && $0.stateRoot == f.stateRoot && $0.blockHash == f.blockHash }) {
                agreed = true
                top = f
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        done.set()
        await sampler.value
        guard failures.value == 0 else { throw PlexusError(.invalidState, "\(failures.value) transfers were not committed") }
        var used: UInt64 = 0
        for k in keys.prefix(50) { used += (try await clients[0].account(k.address)).nonce }
        let expected = keys.prefix(50).indices.reduce(UInt64(0)) { sum, a in sum + UInt64((transactions - a + accounts - 1) / accounts) }
        guard used == expected else { throw PlexusError(.invalidState, "nonces used \(used), expected \(expected)") }

        let sorted = latencies.value.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let result = ReplicatedResult(
            replicas: replicas, etcdMembers: replicas, transactions: txs.count, accounts: accounts, seconds: seconds,
            txPerSecond: Double(txs.count) / seconds, commitLatencyP50Ms: pct(0.5), commitLatencyP99Ms: pct(0.99),
            maxLagBlocks: lag.value.blocks, maxLagMs: lag.value.millis, blocks: top?.height ?? 0,
            sealers: Set(try await clients.asyncMap { try await $0.status().replica?.sealer }.compactMap { $0 }).count,
            agreed: agreed, solo: soloResult)
        if json {
            try printJSON(result)
        } else {
            print(String(format: "%d signed transfers on %d replicas in %.2f s: %.0f tx/s (solo %.0f); commit p50 %.0f ms p99 %.0f ms; lag ≤ %llu blocks",
                         result.transactions, replicas, seconds, result.txPerSecond, soloResult.txPerSecond, result.commitLatencyP50Ms,
                         result.commitLatencyP99Ms, result.maxLagBlocks))
        }
    }
}

extension Array where Element: Sendable {
    func asyncContains(_ p: (Element) async -> Bool) async -> Bool {
        for e in self where await p(e) { return true }
        return false
    }

    func asyncMap<T>(_ f: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await f(e)) }
        return out
    }
}
