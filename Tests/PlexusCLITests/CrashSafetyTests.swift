import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// The real `plexus` binary, killed with SIGKILL under load and restarted.
@Suite(.serialized) struct CrashSafetyTests {
    final class Acks: @unchecked Sendable {
        // Invariant: every access holds `lock`.
        private let lock = NSLock()
        private var hashes: [Int: [Hash256]] = [:]
        func add(_ i: Int, _ h: Hash256) { lock.withLock { hashes[i, default: []].append(h) } }
        var all: [Int: [Hash256]] { lock.withLock { hashes } }
        var count: Int { lock.withLock { hashes.values.reduce(0) { $0 + $1.count } } }
    }

    @Test func everyAcknowledgedTransactionSurvivesKill9() async throws {
        let dir = try TemporaryDirectory("plexus-crash")
        defer { dir.remove() }
        let net = TestNetwork(accounts: 8)
        let env = ["PLEXUS_HOME": dir.path]
        var initArgs = ["ledger", "init", "--out", dir.path + "/genesis.json", "--chain-id", "crash-test",
                        "--orderer-key", dir.path + "/orderer.json"]
        for k in net.keys { initArgs += ["--fund", "\(k.address.text)=1000"] }
        let (status, out) = try await PlexusProcess.run(initArgs, environment: env, logDirectory: dir.path)
        #expect(status == 0, "\(out)")

        let startArgs = ["ledger", "start", "--data", dir.path + "/data", "--genesis", dir.path + "/genesis.json",
                         "--key", dir.path + "/orderer.json", "--port", "0", "--port-file", dir.path + "/port",
                         "--block-interval", "20"]
        let first = try PlexusProcess(startArgs, environment: env, logDirectory: dir.path)
        let port = try await PlexusProcess.waitForPort(file: dir.path + "/port", process: first)
        let client = LedgerClient(baseURL: "http://127.0.0.1:\(port)", timeout: .seconds(20))
        let chainId = try await client.status().chainId
        let recipient = KeyPair.deterministic("crash-recipient").address

        // Eight senders submit with wait=commit as fast as they can.
        let acks = Acks()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<net.keys.count {
                    group.addTask {
                        var nonce: UInt64 = 0
                        while nonce < 5_000 && !Task.isCancelled {
                            let tx = Transaction(chainId: chainId, from: net.keys[i], nonce: nonce, fee: Amount(units: 1_000),
                                                 body: .transfer(to: recipient, amount: Amount(units: 1)))
                            guard let r = try? await client.submit(tx, waitForCommit: true), r.committed else { return }
                            acks.add(i, r.hash)
                            nonce += 1
                        }
                    }
                }
            }
        }
        // Kill mid-load once a good number of transactions is acknowledged.
        let deadline = Date().addingTimeInterval(60)
        while acks.count < 200 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        first.kill9()
        await load.value
        let acked = acks.all
        let total = acked.values.reduce(0) { $0 + $1.count }
        #expect(total >= 200, "only \(total) acknowledged before the deadline")

        // Restart on the same data: every acknowledged transaction is there.
        try? FileManager.default.removeItem(atPath: dir.path + "/port")
        let second = try PlexusProcess(startArgs, environment: env, logDirectory: dir.path)
        defer { second.terminate() }
        let port2 = try await PlexusProcess.waitForPort(file: dir.path + "/port", process: second)
        let client2 = LedgerClient(baseURL: "http://127.0.0.1:\(port2)")
        for (i, hashes) in acked {
            let account = try await client2.account(net.keys[i].address)
            #expect(account.nonce >= UInt64(hashes.count), "account \(i) lost acknowledged transactions")
            for h in hashes {
                #expect(try await client2.transaction(h) != nil, "acknowledged \(h) is missing")
            }
        }
        // The restarted ledger keeps working.
        let after = try await client2.send(.transfer(to: recipient, amount: Amount(units: 1)), from: net.keys[0])
        #expect(after.committed)
        let status2 = try await client2.status()
        second.terminate()

        // The chain verifies from genesis and the replay reproduces the state root.
        let (vstatus, vout) = try await PlexusProcess.run(["ledger", "verify", "--data", dir.path + "/data", "--json"],
                                                    environment: env, logDirectory: dir.path)
        #expect(vstatus == 0, "\(vout)")
        let report = try JSONDecoder().decode(VerifyReport.self, from: Data(vout.utf8))
        #expect(report.ok)
        #expect(report.height == status2.height)
        #expect(report.replayedStateRoot == status2.stateRoot)
    }

    struct VerifyReport: Decodable {
        var ok: Bool
        var height: UInt64
        var replayedStateRoot: Hash256
    }
}
