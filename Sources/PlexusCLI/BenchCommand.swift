import ArgumentParser
import Dispatch
import Foundation
import PlexusCore
import PlexusLedger

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks with JSON output.",
        subcommands: [LedgerBench.self])
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
    }

    func run() async throws {
        let dir = data ?? NSTemporaryDirectory() + "plexus-bench-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if data == nil { try? FileManager.default.removeItem(atPath: dir) } }
        progress("creating \(accounts) accounts")
        let keys = (0..<accounts).map { KeyPair.deterministic("bench-\($0)") }
        let orderer = KeyPair.deterministic("bench-orderer")
        let genesis = Genesis(chainId: "plexus-bench", timeMillis: 0, orderer: orderer.address,
                              accounts: try keys.map { .init(address: $0.address, balance: try .plx(1_000_000)) })
        let store = try BlockStore(path: dir + "/ledger.sqlite")
        try store.initialize(genesis: genesis)

        progress("signing \(transactions) transfers")
        let txs = signTransfers(keys: keys, chainId: genesis.chainId, fee: try genesis.resolvedParams().minFee)

        let service = try LedgerService(store: store, signer: orderer, blockInterval: .milliseconds(blockInterval))
        await service.start()
        progress("submitting")
        var verifyNanos: UInt64 = 0, submitNanos: UInt64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var i = 0
        while i < txs.count {
            let chunk = Array(txs[i..<min(txs.count, i + batch)])
            let t0 = DispatchTime.now().uptimeNanoseconds
            let checked = SignatureCheck.verifyAndHash(chunk)
            let t1 = DispatchTime.now().uptimeNanoseconds
            guard checked.allSatisfy(\.valid) else { throw PlexusError(.badSignature, "benchmark produced a bad signature") }
            let results = await service.submitVerified(zip(chunk, checked.map(\.hash)).map { ($0, $1) })
            for r in results { if case .failure(let e) = r { throw e } }
            let t2 = DispatchTime.now().uptimeNanoseconds
            verifyNanos += t1 - t0
            submitNanos += t2 - t1
            i += chunk.count
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
        if json {
            try printJSON(result)
        } else {
            print(String(format: "%d signed transfers in %.2f s: %.0f tx/s (%llu blocks, replay %@)",
                         result.transactions, seconds, result.txPerSecond, result.blocks, report.ok ? "ok" : "MISMATCH"))
        }
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

    func progress(_ s: String) {
        FileHandle.standardError.write(Data("bench: \(s)\n".utf8))
    }
}
