import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

extension Result where Failure == PlexusError {
    var failureCode: String? {
        if case let .failure(e) = self { return e.code.rawValue }
        return nil
    }
}

/// The HTTP API on a real loopback socket.
@Suite struct APITests {
    let net = TestNetwork(accounts: 3)

    /// Runs a ledger on an ephemeral port for the duration of `body`.
    func withLedger(idleTimeout: TimeAmount = .seconds(15), _ body: (LedgerClient, LedgerService) async throws -> Void) async throws {
        try await TestLedger.run(net, idleTimeout: idleTimeout, body)
    }

    func raw(_ client: LedgerClient, _ method: String, _ path: String, body: [UInt8]? = nil) async throws -> (Int, String) {
        var req = HTTPClientRequest(url: client.baseURL + path)
        req.method = .init(rawValue: method)
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let resp = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
        let buf = try await resp.body.collect(upTo: 1 << 20)
        return (Int(resp.status.code), String(buffer: buf))
    }

    /// Silent and half-open connections are closed after the idle time; a long-poll that
    /// outlasts it is a request in progress and is answered.
    @Test func idleConnectionsCloseButLongPollsAreAnswered() async throws {
        try await withLedger(idleTimeout: .seconds(1)) { client, _ in
            let port = try #require(URL(string: client.baseURL)?.port)
            let silent = try await RawConnection.open(port: port, sending: "")
            let half = try await RawConnection.open(port: port, sending: "GET /v1/status HTTP/1.1\r\nHost: a\r\n")
            let t0 = Date()
            let (status, _) = try await raw(client, "GET", "/v1/events?since=999999&timeout_ms=2500")
            #expect(status == 200 && Date().timeIntervalSince(t0) >= 2)
            let silentClosed = await silent.closed(within: 20), halfClosed = await half.closed(within: 20)
            #expect(silentClosed && halfClosed)
        }
    }

    /// Given several replicas, one that refuses connections costs no more than the refusal:
    /// the client goes on to the next at once instead of retrying until its timeout.
    @Test func aReplicaThatRefusesConnectionsIsPassedOverAtOnce() async throws {
        try await withLedger { client, _ in
            // A port bound but not listening: connections to it are refused, and no one else takes it meanwhile.
            let reserved = try EtcdCluster.reservedPort()
            defer { close(reserved.fd) }
            let dead = "http://127.0.0.1:\(reserved.port)"
            // A client that waited for its timeout on the dead replica would take 240 s or more; on a busy
            // machine the four calls can take half a minute.
            let both = LedgerClient(baseURL: dead + "," + client.baseURL, timeout: .seconds(240))
            let t0 = ContinuousClock.now
            for _ in 0..<3 { #expect(try await both.status().chainId == "plexus-test") }
            _ = try await both.send(.transfer(to: net.keys[1].address, amount: Amount(units: 1)), from: net.keys[0])
            #expect(ContinuousClock.now - t0 < .seconds(180), "a refused replica waited for the timeout")
            // Alone, the refused replica is an I/O error, not a hang either.
            await #expect(throws: PlexusError.self) { try await LedgerClient(baseURL: dead + "," + dead, timeout: .seconds(60)).status() }
        }
    }

    @Test func submitsReadsAndStreamsEvents() async throws {
        try await withLedger { client, _ in
            let status = try await client.status()
            #expect(status.chainId == "plexus-test")
            let r = try await client.send(.transfer(to: net.keys[1].address, amount: Amount(units: 77)), from: net.keys[0])
            #expect(r.committed)
            let acct = try await client.account(net.keys[1].address)
            #expect(acct.balance.units == 1_000 * Amount.unitsPerPLX + 77)
            let block = try await client.block(r.height)
            #expect(block?.transactionHashes.contains(r.hash) == true)
            let events = try await client.events(since: 0, timeoutMillis: 0)
            #expect(events.events.contains { $0.event == .transferred(from: net.keys[0].address, to: net.keys[1].address, amount: Amount(units: 77)) })
            // Long-poll: a waiting reader wakes when the next block commits.
            async let later = client.events(since: r.height, timeoutMillis: 20_000)
            try await Task.sleep(for: .milliseconds(100))
            _ = try await client.send(.stake(amount: Amount(units: 5)), from: net.keys[2])
            let page = try await later
            #expect(page.events.contains { $0.event == .staked(account: net.keys[2].address, amount: Amount(units: 5)) })
            let (code, text) = try await raw(client, "GET", "/metrics")
            #expect(code == 200 && text.contains("x 1"))
        }
    }

    /// A batch is applied in order, each transaction as if sent alone; a bad
    /// one is refused (and the nonces after it with it) without stopping the rest.
    @Test func batchesApplyInOrderWithAResultForEach() async throws {
        try await withLedger { client, service in
            let to = net.keys[1].address
            var txs = (0..<5).map { n in net.tx(0, nonce: UInt64(n), .transfer(to: to, amount: Amount(units: 10))) }
            txs.append(net.tx(2, nonce: 0, .transfer(to: to, amount: Amount(units: 3))))
            var forged = txs[5]
            forged.signature = net.keys[0].sign([1, 2, 3])
            txs.append(forged)  // bad signature
            txs.append(net.tx(0, nonce: 9, .transfer(to: to, amount: Amount(units: 10))))  // nonce gap
            let results = try await client.submitAll(txs, waitForCommit: true)
            #expect(results.count == 8)
            #expect(results.prefix(6).allSatisfy { (try? $0.get())?.committed == true })
            #expect(results[6].failureCode == "bad_signature")
            #expect(results[7].failureCode == "bad_nonce")
            #expect(await service.account(net.keys[0].address).nonce == 5)
            let acct = try await client.account(to)
            #expect(acct.balance.units == 1_000 * Amount.unitsPerPLX + 53)
            // Only canonical bytes, whole, within the limits.
            var w = CanonicalWriter()
            w.write(array: [net.tx(0, nonce: 5, .transfer(to: to, amount: Amount(units: 1)))])
            let (json, _) = try await raw(client, "POST", "/v1/txs", body: Array(try JSONEncoder().encode(txs)))
            #expect(json == 400)
            for body in [Array(w.bytes.dropLast(3)), w.bytes + [0]] {
                var req = HTTPClientRequest(url: client.baseURL + "/v1/txs")
                req.method = .POST
                req.headers.add(name: "content-type", value: LedgerAPI.canonicalType)
                req.body = .bytes(ByteBuffer(bytes: body))
                let resp = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
                #expect(resp.status.code == 400)
            }
            var many = CanonicalWriter()
            many.write(array: (0..<(LedgerAPI.maxBatchTransactions + 1)).map { n in net.tx(0, nonce: 5 + UInt64(n), .transfer(to: to, amount: Amount(units: 1))) })
            var req = HTTPClientRequest(url: client.baseURL + "/v1/txs")
            req.method = .POST
            req.headers.add(name: "content-type", value: LedgerAPI.canonicalType)
            req.body = .bytes(ByteBuffer(bytes: many.bytes))
            let tooMany = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
            #expect(tooMany.status.code == 413, "\(tooMany.status)")
            #expect(await service.account(net.keys[0].address).nonce == 5)
        }
    }

    @Test func hostileRequestsGetClearErrorsAndChangeNothing() async throws {
        try await withLedger { client, service in
            let before = await service.status()
            let good = try JSONEncoder().encode(net.tx(0, nonce: 0, .transfer(to: net.keys[1].address, amount: Amount(units: 1))))
            var badSig = try JSONSerialization.jsonObject(with: good) as! [String: Any]
            badSig["signature"] = String(repeating: "ab", count: 64)
            var wrongKind = try JSONSerialization.jsonObject(with: good) as! [String: Any]
            wrongKind["kind"] = "mint"
            let wrongChain = try JSONEncoder().encode(Transaction(chainId: "elsewhere", from: net.keys[0], nonce: 0, fee: Amount(units: 1_000),
                                                                   body: .transfer(to: net.keys[1].address, amount: Amount(units: 1))))
            let cases: [(String, [UInt8], Int, String)] = [
                ("malformed JSON", Array("{not json".utf8), 400, "malformed"),
                ("truncated JSON", Array(good.prefix(good.count / 2)), 400, "malformed"),
                ("bad signature", Array(try JSONSerialization.data(withJSONObject: badSig)), 400, "bad_signature"),
                ("unknown kind", Array(try JSONSerialization.data(withJSONObject: wrongKind)), 400, "unknown_kind"),
                ("wrong chain", Array(wrongChain), 400, "wrong_chain"),
                ("oversized body", [UInt8](repeating: 0x20, count: LedgerAPI.maxBodyBytes + 1), 413, "too_large"),
            ]
            for (name, body, status, code) in cases {
                let (got, text) = try await raw(client, "POST", "/v1/tx?wait=commit", body: body)
                #expect(got == status, "\(name): \(text)")
                #expect(text.contains("\"code\":\"\(code)\""), "\(name): \(text)")
            }
            let (c1, _) = try await raw(client, "GET", "/v1/accounts/plx1234")
            #expect(c1 == 400)
            let (c2, _) = try await raw(client, "GET", "/v1/blocks/99999999999999999999")
            #expect(c2 == 400)
            let (c3, _) = try await raw(client, "GET", "/v1/events?since=-1")
            #expect(c3 == 400)
            let after = await service.status()
            #expect(after.height == before.height)
            #expect(await service.account(net.keys[0].address).nonce == 0)
            // Replay: the same signed transaction twice.
            let (ok, _) = try await raw(client, "POST", "/v1/tx?wait=commit", body: Array(good))
            #expect(ok == 200)
            let (replayed, text) = try await raw(client, "POST", "/v1/tx?wait=commit", body: Array(good))
            #expect(replayed == 409 && text.contains("bad_nonce"))
        }
    }
}
