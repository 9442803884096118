import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// The data market with real processes: a dataset added (`plexus data add`), served
/// (`plexus data serve`) and bought (`plexus data get`), every chunk checked against the root
/// and the contributors paid their weights' shares exactly; a server that alters one chunk is
/// caught, its buyer refunded after the deadline and the contributors not paid; a server that
/// never delivers is refunded the same way.
extension MarketNetworkTests {
@Suite struct DataNetworkTests {
    @Test func aDatasetIsServedCheckedAndPaidOrRefunded() async throws {
        let dir = try TemporaryDirectory("plexus-data")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo", "--param", "dataDeliveryBlocks=4"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        let owner = upDir + "/keys/requestor.json"
        func plexus(_ args: [String], ok: Bool = true) async throws -> String {
            let (status, out) = try await PlexusProcess.run(args, logDirectory: dir.path)
            #expect((status == 0) == ok, "plexus \(args.prefix(3)) exited \(status): \(out.suffix(600))")
            return out
        }
        func last(_ out: String) -> String { out.split(separator: "\n").last.map(String.init) ?? "" }
        func newKey(_ name: String, fund: String?) async throws -> Address {
            _ = try await plexus(["keys", "new", "--out", dir.path + "/\(name).json"])
            let a = try Address(last(try await plexus(["keys", "show", "--key", dir.path + "/\(name).json"])))
            if let fund { _ = try await plexus(["tx", "transfer", "--to", a.text, "--amount", fund, "--key", owner, "--ledger", info.ledger]) }
            return a
        }
        let alice = try await newKey("alice", fund: nil), bob = try await newKey("bob", fund: nil)
        let buyer = try await newKey("buyer", fund: "10")
        let server = try await newKey("server", fund: "1"), tamperer = try await newKey("tamperer", fund: "1"), absent = try await newKey("absent", fund: nil)

        // 20,000 random bytes in chunks of 4 KiB: 5 chunks; 1 PLX an access, split 3 : 1.
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.path + "/corpus.bin"))
        let id = last(try await plexus(["data", "add", dir.path + "/corpus.bin", "--name", "corpus", "--license", "cc-by-4.0", "--price", "1",
                                        "--contributor", "\(alice.text)=3", "--contributor", "\(bob.text)=1", "--chunk-size", "4096",
                                        "--dir", dir.path + "/store", "--key", owner, "--ledger", info.ledger]))
        let dataset = try #require(try await ledger.dataset(try Hash256(hex: id)))
        #expect(dataset.manifest.chunks == 5 && dataset.manifest.size == 20_000)

        func serve(_ key: String, _ extra: [String] = []) async throws -> (PlexusProcess, String) {
            let p = try PlexusProcess(["data", "serve", "--dir", dir.path + "/store", "--key", dir.path + "/\(key).json", "--ledger", info.ledger,
                                       "--port", "0", "--port-file", dir.path + "/\(key).port"] + extra, logDirectory: dir.path)
            let port = try await PlexusProcess.waitForPort(file: dir.path + "/\(key).port", process: p)
            return (p, "http://127.0.0.1:\(port)")
        }
        let (honest, honestURL) = try await serve("server")
        defer { honest.terminate() }
        _ = try await plexus(["data", "get", id, "--server", honestURL, "--out", dir.path + "/got.bin", "--key", dir.path + "/buyer.json", "--ledger", info.ledger])
        #expect(FileManager.default.contents(atPath: dir.path + "/got.bin") == Data(bytes))
        #expect(try await ledger.account(alice).balance == Amount(units: 750_000_000))
        #expect(try await ledger.account(bob).balance == Amount(units: 250_000_000))

        // One altered chunk: caught, nothing acknowledged, the grant open; refunded after its deadline.
        let (bad, badURL) = try await serve("tamperer", ["--tamper-chunk", "2"])
        defer { bad.terminate() }
        let buyerBefore = try await ledger.account(buyer).balance
        let out = try await plexus(["data", "get", id, "--server", badURL, "--out", dir.path + "/bad.bin", "--key", dir.path + "/buyer.json",
                                    "--ledger", info.ledger], ok: false)
        #expect(out.contains("chunk 2 does not match"), "\(out.suffix(400))")
        let grantLine = try #require(out.split(separator: "\n").first { $0.hasPrefix("grant ") })
        let tampered = try Hash256(hex: String(grantLine.dropFirst(6)))
        // The buyer also buys from a server that never serves it.
        let nonce = try await ledger.account(buyer).nonce
        _ = try await ledger.send(.buyData(dataset: dataset.id, server: absent), from: try KeyFile.read(dir.path + "/buyer.json"))
        let missing = DataMarket.grantId(buyer: buyer, nonce: nonce)
        for g in [tampered, missing] {
            #expect(try await ledger.dataGrant(g)?.status == .open)
            _ = try await plexus(["data", "refund", g.hex, "--key", owner, "--ledger", info.ledger], ok: false)  // before the deadline
        }
        let deadline = try #require(try await ledger.dataGrant(missing)).deadline
        while try await ledger.status().height <= deadline {
            _ = try await ledger.send(.transfer(to: server, amount: Amount(units: 1)), from: try KeyFile.read(owner))
        }
        for g in [tampered, missing] {
            _ = try await plexus(["data", "refund", g.hex, "--key", owner, "--ledger", info.ledger])
            #expect(try await ledger.dataGrant(g)?.status == .refunded)
        }
        // The buyer paid two prices and got both back (less the fees of its own transactions); the contributors got nothing more.
        let fees = 2 * Params.defaults[.minFee]
        #expect(try await ledger.account(buyer).balance.units == buyerBefore.units - fees)
        #expect(try await ledger.account(alice).balance == Amount(units: 750_000_000))
        #expect(try await ledger.account(bob).balance == Amount(units: 250_000_000))
        _ = tamperer
        await bad.stop()
        await honest.stop()
        await up.stop()
    }
}
}
