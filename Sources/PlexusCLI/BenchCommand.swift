import ArgumentParser
import Dispatch
import Foundation
import PlexusCore
import PlexusLedger

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks with JSON output.",
        subcommands: [LedgerBench.self, EngineBench.self, GatewayBench.self, GovernanceBench.self, CryptoBench.self, VerifyBench.self, DetectBench.self, ServeBench.self, ShardBench.self, SoakBench.self, ExplorerBench.self])
}

/// Signed transfers applied and persisted per second, through the real
/// orderer (`LedgerService`) and SQLite store, with every signature verified.
struct LedgerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Throughput of signed transfers: verified, applied, sealed and persisted.")

    @Option(name: .long, help: "Transfers to submit.") var transactions: Int = 100_000
    @Option(name: .long, help: "Distinct sending accounts.") var accounts: Int = 2_000
    @Option(name: .long, help: "Transactions verified and submitted per batch.") var batch: Int = 4_096
    @Option(name: .long, help: "Block interval in ms.") var blockInterval: Int = 100
    @Option(name: .long, help: "Directory for the database (default: a fresh temporary one, removed after).") var data: String?
    @Option(name: .long, help: "Replicas ordered through an etcd cluster of as many members (1: the solo orderer in this process only).") var replicas: Int = 1
    @Option(name: .long, help: "With --replicas: batches in flight at once, spread over the replicas.") var inFlight: Int = 48
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Result: Codable {
        var benchmark = "ledger"
        var transactions: Int
        var accounts: Int
        var signaturesVerified: Int
        var seconds: Double
        var txPerSecond: Double
        var blocks: UInt64
        var meanBlockSize: Double
        var verifySeconds: Double
        var submitSeconds: Double
        var threads: Int
        var stateRoot: Hash256
        var replayVerified: Bool

        enum CodingKeys: String, CodingKey {
            case benchmark, transactions, accounts, threads, seconds, blocks
            case signaturesVerified = "signatures_verified"
            case txPerSecond = "tx_per_s"
            case meanBlockSize = "mean_block_size"
            case verifySeconds = "verify_s"
            case submitSeconds = "submit_s"
            case stateRoot = "state_root"
            case replayVerified = "replay_verified"
        }
    }

    func validate() throws {
        guard transactions > 0, transactions <= 10_000_000 else { throw ValidationError("--transactions must be 1...10000000") }
        guard accounts > 1, accounts <= 1_000_000 else { throw ValidationError("--accounts must be 2...1000000") }
        guard batch > 0 else { throw ValidationError("--batch must be positive") }
        guard (1...5).contains(replicas) else { throw ValidationError("--replicas must be 1...5") }
        guard (1...1_024).contains(inFlight) else { throw ValidationError("--in-flight must be 1...1024") }
        if replicas > 1, EtcdCluster.binary() == nil { throw ValidationError("--replicas needs the etcd binary (apt-get install etcd-server)") }
    }

    func run() async throws {
        if replicas > 1 {
            try await runReplicated()
            return
        }
        let result = try await solo()
        if json {
            try printJSON(result)
        } else {
            print(String(format: "%d signed transfers in %.2f s: %.0f tx/s (%llu blocks, replay %@)",
                         result.transactions, result.seconds, result.txPerSecond, result.blocks, result.replayVerified ? "ok" : "MISMATCH"))
        }
    }

    /// The solo orderer in this process: verified, applied, sealed and persisted.
    func solo() async throws -> Result {
        let dir = data ?? NSTemporaryDirectory() + "plexus-bench-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if data == nil { try? FileManager.default.removeItem(atPath: dir) } }
        progress("creating \(accounts) accounts")
        let keys = (0..<accounts).map { KeyPair.deterministic("bench-\($0)") }
        let orderer = KeyPair.deterministic("bench-orderer")
        let genesis = Genesis(chainId: "plexus-bench", timeMillis: 0, orderer: orderer.address,
                              accounts: keys.map { .init(address: $0.address, balance: Amount(units: UInt64.max / 2 / UInt64(keys.count))) })
        let store = try BlockStore(path: dir + "/ledger.sqlite")
        try store.initialize(genesis: genesis)

        progress("signing \(transactions) transfers")
        let txs = signTransfers(keys: keys, chainId: genesis.chainId, fee: try genesis.resolvedParams().minFee)

        let service = try LedgerService(store: store, signer: orderer, blockInterval: .milliseconds(blockInterval))
        await service.start()
        progress("submitting")
        var verifyNanos: UInt64 = 0, submitNanos: UInt64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        // Verification of batch k+1 overlaps the serial apply of batch k.
        let chunks = stride(from: 0, to: txs.count, by: batch).map { Array(txs[$0..<min(txs.count, $0 + batch)]) }
        func verify(_ chunk: [Transaction]) -> Task<([(valid: Bool, hash: Hash256)], UInt64), Never> {
            Task.detached {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let checked = SignatureCheck.verifyAndHash(chunk)
                return (checked, DispatchTime.now().uptimeNanoseconds - t0)
            }
        }
        var next = chunks.isEmpty ? nil : verify(chunks[0])
        for (k, chunk) in chunks.enumerated() {
            guard let (checked, nanos) = await next?.value else { break }
            verifyNanos += nanos
            next = k + 1 < chunks.count ? verify(chunks[k + 1]) : nil
            guard checked.allSatisfy(\.valid) else { throw PlexusError(.badSignature, "benchmark produced a bad signature") }
            let t1 = DispatchTime.now().uptimeNanoseconds
            let results = await service.submitVerified(zip(chunk, checked.map(\.hash)).map { ($0, $1) })
            for r in results { if case .failure(let e) = r { throw e } }
            submitNanos += DispatchTime.now().uptimeNanoseconds - t1
        }
        await service.stop()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if let failure = await service.failed { throw failure }
        let status = await service.status()

        progress("replaying the chain from genesis")
        let report = try LedgerCommand.Verify.verify(store)
        let result = Result(
            transactions: txs.count, accounts: accounts, signaturesVerified: txs.count, seconds: seconds,
            txPerSecond: Double(txs.count) / seconds, blocks: status.height,
            meanBlockSize: Double(txs.count) / Double(max(status.height, 1)),
            verifySeconds: Double(verifyNanos) / 1e9, submitSeconds: Double(submitNanos) / 1e9,
            threads: ProcessInfo.processInfo.activeProcessorCount, stateRoot: status.stateRoot, replayVerified: report.ok)
        return result
    }

    /// Transfers round-robin over the accounts, signed on all cores.
    func signTransfers(keys: [KeyPair], chainId: String, fee: Amount) -> [Transaction] {
        let n = transactions, a = keys.count
        let out = UnsafeMutableBufferPointer<Transaction?>.allocate(capacity: n)
        out.initialize(repeating: nil)
        defer { out.deallocate() }
        nonisolated(unsafe) let buf = out
        let chunks = max(1, min(64, n / 256))
        let per = (n + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            for i in (c * per)..<min(n, (c + 1) * per) {
                let sender = i % a
                let recipient = (sender + 1 + (i / a) % (a - 1)) % a
                buf[i] = Transaction(chainId: chainId, from: keys[sender], nonce: UInt64(i / a), fee: fee,
                                     body: .transfer(to: keys[recipient].address, amount: Amount(units: 1_000)))
            }
        }
        return out.compactMap { $0 }
    }

    func progress(_ s: String) { benchProgress(s) }
}

/// A progress line for a benchmark, on stderr (stdout carries the result).
func benchProgress(_ s: String) {
    FileHandle.standardError.write(Data("bench: \(s)\n".utf8))
}
