import AsyncHTTPClient
import Foundation
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

/// Agents with budgets through the real binaries: a payer grants an agent a policy with
/// `plexus agent grant`; the agent calls the gateway with an API key of its own; its requests
/// are paid from the payer's escrow while the policy allows, and get a clear 402 or 403
/// (never settled) past its budget, above its most per request, for a model not allowed and
/// after `plexus agent revoke`. The agent pays a service for a call it made (`plexus agent pay`), once.
extension MarketNetworkTests {
@Suite struct AgentNetworkTests {
    @Test func anAgentSpendsWithinItsPolicyAndIsRefusedPastIt() async throws {
        let dir = try TemporaryDirectory("plexus-agent")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate() }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        let payerKey = upDir + "/keys/requestor.json"
        func plexus(_ args: [String], ok: Bool = true) async throws -> String {
            let (status, out) = try await PlexusProcess.run(args, logDirectory: dir.path)
            #expect((status == 0) == ok, "plexus \(args.prefix(3)) exited \(status): \(out.suffix(600))")
            return out.split(separator: "\n").last.map(String.init) ?? ""
        }
        // The agent: a key of its own (a little balance for fees) and an API key for its account.
        _ = try await plexus(["keys", "new", "--out", dir.path + "/agent.json"])
        let agent = try Address(try await plexus(["keys", "show", "--key", dir.path + "/agent.json"]))
        _ = try await plexus(["tx", "transfer", "--to", agent.text, "--amount", "1", "--key", payerKey, "--ledger", info.ledger])
        var agentInfo = info
        agentInfo.apiKey = try await plexus(["gateway", "keys", "create", "--account", agent.text, "--data", upDir + "/gateway"])
        func grant(_ extra: [String]) async throws {
            _ = try await plexus(["agent", "grant", agent.text, "--key", payerKey, "--ledger", info.ledger] + extra)
            try await Task.sleep(for: .milliseconds(1_100))  // the gateway reads a grant at most a second old
        }
        func ask() async throws -> (status: Int, code: String?, id: Hash256?) {
            let (r, j) = try await NetworkTests.post(agentInfo, ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "one two three"]]])
            return (Int(r.status.code), (j["error"] as? [String: Any])?["code"] as? String,
                    r.headers.first(name: "x-plexus-request-id").flatMap { try? Hash256(hex: $0) })
        }

        // A model not allowed: 403; a most per request below the request's worst case (tens of
        // thousands of units here): 402; nothing served, nothing settled.
        try await grant(["--budget", "40000u", "--max-price", "35000u", "--model", "some-other-model"])
        var a = try await ask()
        #expect(a.status == 403 && a.code == "model_not_allowed", "\(a)")
        try await grant(["--budget", "40000u", "--max-price", "1000u", "--model", "echo"])
        a = try await ask()
        #expect(a.status == 402 && a.code == "agent_price_exceeded", "\(a)")

        // Within the policy: served and paid from the payer's escrow, until the budget left cannot
        // cover a request's worst case; then 402.
        try await grant(["--budget", "40000u", "--max-price", "35000u", "--model", "echo"])
        let shown = try await plexus(["agent", "show", agent.text, "--ledger", info.ledger, "--json"])
        #expect(!shown.isEmpty)
        var served: [Hash256] = []
        var lastRefusal: (Int, String?) = (0, nil)
        for _ in 0..<60 {
            let r = try await ask()
            if r.status == 200, let id = r.id { served.append(id); continue }
            lastRefusal = (r.status, r.code)
            break
        }
        #expect(!served.isEmpty && lastRefusal.0 == 402 && lastRefusal.1 == "agent_budget_exceeded", "served \(served.count), then \(lastRefusal)")

        // Every served request settles, charged to the payer's escrow; the agent's own escrow is untouched.
        var charged: UInt64 = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let s = try await ledger.settlements(served)
            if s.count == served.count {
                charged = s.values.reduce(0) { $0 + $1.charge.units }
                #expect(s.values.allSatisfy { $0.requestor == agent })
                break
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(charged > 0 && charged <= 40_000, "charged \(charged)")
        print("agent: \(served.count) requests served for \(charged) units of a 40,000-unit budget, then \(lastRefusal)")
        let view = try #require(try await ledger.agent(agent))
        let payer = try KeyFile.read(payerKey).address
        #expect(view.grant.spent.units == charged && view.grant.payer == payer)
        #expect(try await ledger.account(agent).escrow == .zero)

        // Revoked: 403 at once (within the gateway's second), and the ledger would refuse it too.
        _ = try await plexus(["agent", "revoke", agent.text, "--key", payerKey, "--ledger", info.ledger])
        try await Task.sleep(for: .milliseconds(1_100))
        a = try await ask()
        #expect(a.status == 403 && a.code == "agent_revoked", "\(a)")

        // A call paid: a service account makes a request; the agent (re-granted) pays it for that call, once.
        try await grant(["--budget", "40000u", "--max-price", "35000u"])
        _ = try await plexus(["keys", "new", "--out", dir.path + "/service.json"])
        let service = try Address(try await plexus(["keys", "show", "--key", dir.path + "/service.json"]))
        _ = try await plexus(["tx", "deposit", "--requestor", service.text, "--amount", "1", "--key", payerKey, "--ledger", info.ledger])
        var serviceInfo = info
        serviceInfo.apiKey = try await plexus(["gateway", "keys", "create", "--account", service.text, "--data", upDir + "/gateway"])
        let (sr, _) = try await NetworkTests.post(serviceInfo, ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "a call"]]])
        let call = try #require(sr.headers.first(name: "x-plexus-request-id"))
        let until = Date().addingTimeInterval(60)
        while try await ledger.settlement(try Hash256(hex: call)) == nil, Date() < until { try await Task.sleep(for: .milliseconds(500)) }
        let payerEscrow = try await ledger.account(view.grant.payer).escrow
        _ = try await plexus(["agent", "pay", "--to", service.text, "--amount", "700u", "--request", call, "--key", dir.path + "/agent.json", "--ledger", info.ledger])
        #expect(try await ledger.account(service).balance == Amount(units: 700))
        #expect(try await ledger.account(view.grant.payer).escrow.units == payerEscrow.units - 700)
        #expect(try await ledger.callPayment(try Hash256(hex: call))?.from == agent)
        _ = try await plexus(["agent", "pay", "--to", service.text, "--amount", "700u", "--request", call, "--key", dir.path + "/agent.json",
                              "--ledger", info.ledger], ok: false)
        #expect(try await ledger.account(service).balance == Amount(units: 700))
        await up.stop()
    }
}
}
