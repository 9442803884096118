import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusGateway
import PlexusLedger
import PlexusTestKit
import Testing

/// 200+ requests through a real network (echo nodes) with nodes killed and
/// restarted, clients hanging up mid-stream and the gateway killed and
/// restarted: every unit leaving escrow reaches a node, the treasury or the
/// model's creator, and nothing settles twice.
@Suite(.serialized) struct MoneyFlowTests {
    @Test func moneyBalancesThroughFailuresDisconnectsAndAGatewayRestart() async throws {
        try await Self.moneyFlow(replicas: 1)
    }

    /// The same run on a ledger of three replicas ordered through etcd, whose sealer is
    /// killed in the middle (another replica takes over; nodes and the gateway fail over).
    @Test(.enabled(if: EtcdCluster.binary() != nil, "needs etcd"))
    func moneyBalancesOnAReplicatedLedgerWhoseSealerIsKilled() async throws {
        try await Self.moneyFlow(replicas: 3)
    }

    static func moneyFlow(replicas: Int) async throws {
        let dir = try TemporaryDirectory("plexus-money")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        // No service reports (`--report-every 0`): the treasury check below reads accounts one by one,
        // and a report's fee landing between those reads would count on one side only.
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo", "--replicas", String(replicas), "--report-every", "0"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        var extra: [PlexusProcess] = []
        defer {
            for p in extra { p.terminate() }
            up.terminate(seconds: 30)
        }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        func address(_ name: String) throws -> Address { try KeyFile.read(upDir + "/keys/\(name).json").address }
        let owners = try (1...3).map { try address("node-\($0)") }
        let creator = try address("creator")
        let everyone = owners + [creator, info.requestor, try address("gateway"), try address("gateway-owner")]
        var before: [Address: AccountView] = [:]
        for a in everyone { before[a] = try await ledger.account(a) }
        let treasury0 = try await ledger.account(.treasury).balance
        let port = Int(info.baseURL.split(separator: ":").last!.split(separator: "/").first!)!
        // The children in the order `up` starts them: the ledger (or its replicas), the nodes, the gateway.
        let node = { (i: Int) in info.pids[replicas - 1 + i] }, gatewayPid = info.pids[replicas + 3]

        var rng = SeededGenerator(seed: 2026)
        var ok = 0, failed = 0, hungUp = 0
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
        for i in 0..<210 {
            switch i {
            case 40: kill(node(1), SIGKILL)
            case 80:  // node-1 comes back on a new port (and updates its registration)
                extra.append(try PlexusProcess(["node", "start", "--ledger", info.ledger, "--key", upDir + "/keys/node-1.json", "--model", "echo",
                                                "--backend", "echo", "--concurrency", "512", "--price-in", "0.2", "--price-out", "0.4"],
                                               logDirectory: dir.path))
            case 120:  // the gateway dies with receipts not yet settled, and restarts on its data
                kill(gatewayPid, SIGKILL)
                try await Task.sleep(for: .milliseconds(300))
                let g = try PlexusProcess(["gateway", "start", "--ledger", info.ledger, "--key", upDir + "/keys/gateway.json",
                                           "--data", upDir + "/gateway", "--port", String(port), "--port-file", dir.path + "/gw2.port",
                                           "--key-rps", "0", "--key-concurrency", "0", "--report-every", "0"],  // as `up` starts it here
                                          logDirectory: dir.path)
                extra.append(g)
                do {
                    _ = try await PlexusProcess.waitForPort(file: dir.path + "/gw2.port", seconds: 120, process: g)
                } catch {
                    Issue.record("the gateway did not restart: \(g.log.suffix(3_000))\n--- up: \(up.log.suffix(2_000))")
                    throw error
                }
            case 100 where replicas > 1:
                // The sealer dies; requests keep coming (the challenge windows keep counting on the new sealer's blocks).
                var sealer: Int?
                for (k, url) in info.ledger.split(separator: ",").enumerated() {
                    if try await LedgerClient(baseURL: String(url)).status().replica?.role == "sealer" { sealer = k }
                }
                let k = try #require(sealer)
                // `info.ledger` lists the replicas from the first; their pids lead `info.pids`.
                kill(info.pids[k], SIGKILL)
            case 160: kill(node(2), SIGKILL)
            default: break
            }
            let n = 1 + Int(rng.next() % 9)
            let content = (0..<n).map { _ in words[Int(rng.next() % 10)] }.joined(separator: " ")
            let stream = rng.next() % 10 < 4
            let hangUp = stream && rng.next() % 4 == 0
            var body: [String: Any] = ["model": "echo", "max_tokens": 1 + Int(rng.next() % 12), "messages": [["role": "user", "content": content]]]
            if stream { body["stream"] = true }
            var r = HTTPClientRequest(url: info.baseURL + "/chat/completions")
            r.method = .POST
            r.headers.add(name: "authorization", value: "Bearer \(info.apiKey)")
            r.headers.add(name: "content-type", value: "application/json")
            r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
            do {
                let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(30))
                if hangUp {
                    // Read one chunk, then drop the connection.
                    var it = resp.body.makeAsyncIterator()
                    _ = try await it.next()
                    hungUp += 1
                    continue
                }
                _ = try await resp.body.collect(upTo: 1 << 20)
                if resp.status == .ok { ok += 1 } else { failed += 1 }
            } catch {
                failed += 1
            }
        }
        #expect(ok > 120, "ok \(ok), failed \(failed), hung up \(hungUp)")

        // Wait for every receipt the gateway kept to be final on the ledger.
        let store = try ReceiptStore(path: upDir + "/gateway/receipts.sqlite", readOnly: true)
        let settleBy = Date().addingTimeInterval(120)
        while try !store.records(in: ["unsettled", "submitted", "pending"], limit: 1).isEmpty {
            guard Date() < settleBy else {
                let stuck = try store.records(in: ["unsettled", "submitted", "pending"], limit: 5)
                let logs = extra.map { String($0.log.suffix(1_500)) }.joined(separator: "\n---\n")
                Issue.record("receipts did not all settle: \(stuck.map { "\($0.state) \($0.reason ?? "")" }) \(logs)")
                return
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        let records = try store.records(in: ["final", "rejected"], limit: 100_000)
        #expect(records.allSatisfy { $0.state == "final" }, "\(records.filter { $0.state != "final" }.map(\.reason))")
        let settlements = try await ledger.settlements(records.map(\.requestId))
        #expect(settlements.count == records.count)

        var charged: UInt64 = 0, fees: UInt64 = 0
        var paid: [Address: UInt64] = [:]
        for r in records {
            guard let s = settlements[r.requestId] else { continue }
            #expect(s.status == .final && s.charge == r.charge)
            #expect(s.charge.units == s.payouts.reduce(s.fee.units) { $0 + $1.amount.units })
            charged += s.charge.units
            fees += s.fee.units
            for p in s.payouts { paid[p.account, default: 0] += p.amount.units }
        }
        var after: [Address: AccountView] = [:]
        for a in everyone { after[a] = try await ledger.account(a) }
        let minFee: UInt64 = 1_000
        // The requestor's escrow fell by exactly what was charged: once per request.
        #expect(before[info.requestor]!.escrow.units - after[info.requestor]!.escrow.units == charged)
        // Each owner and the creator received exactly their payouts (net of the fees they paid themselves).
        for a in owners + [creator] {
            let txFees = (after[a]!.nonce - before[a]!.nonce) * minFee
            #expect(after[a]!.balance.units + txFees - before[a]!.balance.units == paid[a, default: 0], "\(a.short)")
        }
        // The treasury received the protocol fees plus every transaction fee paid meanwhile.
        let txFees = everyone.reduce(UInt64(0)) { $0 + (after[$1]!.nonce - before[$1]!.nonce) * minFee }
        #expect(try await ledger.account(.treasury).balance.units - treasury0.units == fees + txFees)
        #expect(paid.values.reduce(0, +) + fees == charged)
    }
}
