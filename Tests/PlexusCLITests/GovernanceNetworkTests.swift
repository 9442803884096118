import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusTestKit
import Synchronization
import Testing

/// Governance through the real binaries: node operators (who hold the stake
/// in `plexus up`) pass and execute a protocol-fee change with `plexus gov`,
/// and the next settlement charges the new fee; out-of-bounds values are
/// refused.
@Suite(.serialized) struct GovernanceNetworkTests {
    @Test func anExecutedFeeChangeChangesTheNextSettlement() async throws {
        let dir = try TemporaryDirectory("plexus-gov")
        defer { dir.remove() }
        let upDir = dir.path + "/up"
        // Voting lasts 90 blocks (45 s at least): three `plexus gov vote` processes started at once on
        // a loaded 2-core machine once took longer than the 30 blocks `plexus up` sets.
        let up = try PlexusProcess(["up", "--dir", upDir, "--port", "0", "--backend", "echo", "--param", "votingPeriodBlocks=90"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        defer { up.terminate(seconds: 30) }
        let info = try await NetworkTests.waitForNetwork(up, directory: upDir, seconds: 120)
        let ledger = LedgerClient(baseURL: info.ledger)
        func plexus(_ args: [String]) async throws -> (Int32, String) {
            try await PlexusProcess.run(args + ["--ledger", info.ledger], logDirectory: dir.path)
        }
        func key(_ n: Int) -> [String] { ["--key", upDir + "/keys/node-\(n).json"] }
        /// The settlement of one chat request, once final.
        func settledRequest() async throws -> Settlement {
            let (resp, _) = try await NetworkTests.post(info, ["model": "echo", "max_tokens": 8, "messages": [["role": "user", "content": "one two three"]]])
            #expect(resp.status == .ok)
            let id = try Hash256(hex: resp.headers.first(name: "x-plexus-request-id") ?? "")
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                if let s = try await ledger.settlement(id), s.status == .final { return s }
                try await Task.sleep(for: .milliseconds(250))
            }
            throw PlexusError(.io, "request \(id) did not settle")
        }
        func waitFor(_ id: Hash256, _ state: ProposalState) async throws {
            let deadline = Date().addingTimeInterval(240)
            while try await ledger.proposal(id).state != state {
                guard Date() < deadline else { throw PlexusError(.io, "proposal never became \(state): \(try await ledger.proposal(id))") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }

        let before = try await settledRequest()
        #expect(before.fee.units == before.charge.units * 500 / 10_000)

        // Out of bounds: refused at proposal time, nothing recorded.
        let (badStatus, badOut) = try await plexus(["gov", "propose", "--title", "too high", "--set", "protocolFeeBps=5000"] + key(1))
        #expect(badStatus != 0)
        #expect(badOut.contains("outside its bounds"))
        #expect(try await ledger.proposals().isEmpty)

        // Propose 10%; two of three operators vote for, one against.
        let (status, out) = try await plexus(["gov", "propose", "--title", "Raise the protocol fee to 10%", "--set", "protocolFeeBps=1000"] + key(1))
        #expect(status == 0, "\(out)")
        let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("proposal ") })
        let id = try Hash256(hex: String(line.dropFirst("proposal ".count)))
        try await waitFor(id, .active)
        // The three votes at once: three processes one after another could outlast the vote on a loaded machine.
        let ballots = [(1, "for"), (2, "for"), (3, "against")].map { n, choice in
            ["gov", "vote", id.hex, "--choice", choice] + key(n) + ["--ledger", info.ledger]
        }
        let logs = dir.path
        let cast = await withTaskGroup(of: (Int32, String).self) { group in
            for ballot in ballots {
                group.addTask { (try? await PlexusProcess.run(ballot, logDirectory: logs)) ?? (-1, "could not run plexus") }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for (s, o) in cast { #expect(s == 0, "\(o)") }
        let (dup, dupOut) = try await plexus(["gov", "vote", id.hex, "--choice", "against"] + key(1))
        #expect(dup != 0 && dupOut.contains("already voted"), "\(dupOut)")
        try await waitFor(id, .succeeded)
        let view = try await ledger.proposal(id)
        #expect(view.counts[0].forVotes == 2 * view.counts[0].againstVotes)
        #expect(try await plexus(["gov", "queue", id.hex] + key(3)).0 == 0)
        let eta = try #require(try await ledger.proposal(id).eta)
        while try await ledger.status().height < eta { try await Task.sleep(for: .milliseconds(200)) }
        let (execStatus, execOut) = try await plexus(["gov", "execute", id.hex] + key(3))  // anyone may execute
        #expect(execStatus == 0, "\(execOut)")
        #expect(try await ledger.proposal(id).state == .executed)
        let (_, params) = try await plexus(["gov", "params", "--json"])
        let table = try JSONDecoder().decode(ParamsView.self, from: Data(params.utf8))
        #expect(table.params.first { $0.name == "protocolFeeBps" }?.value == 1_000)

        // The ledger's metrics count proposals.
        let metrics = try await HTTPClient.shared.execute(HTTPClientRequest(url: info.ledger + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
        #expect(text.contains("plexus_ledger_proposals{voting=\"any\"} 1"), "\(text)")
        #expect(text.contains("plexus_ledger_communities 2"))

        // The running network now charges the new fee.
        let after = try await settledRequest()
        #expect(after.fee.units == after.charge.units * 1_000 / 10_000)
        #expect(after.settledHeight > eta)

        // A summary from the network, recorded on the proposal by the requestor who paid for it.
        let (sumStatus, sumOut) = try await plexus(["gov", "summarize", id.hex, "--gateway", info.baseURL, "--api-key", info.apiKey, "--model", "echo",
                                               "--key", upDir + "/keys/requestor.json"])
        #expect(sumStatus == 0, "\(sumOut)")
        let summary = try #require(try await ledger.proposal(id).summary)
        #expect(summary.model == "echo")
        #expect(summary.recordedBy == info.requestor)
        #expect(try await ledger.settlement(summary.requestId)?.model == "echo")
        #expect(sumOut.contains("summary hash \(summary.summaryHash)"))
        let (again, againOut) = try await plexus(["gov", "summarize", id.hex, "--gateway", info.baseURL, "--api-key", info.apiKey, "--model", "echo",
                                             "--key", upDir + "/keys/node-1.json"])
        #expect(again != 0, "\(againOut)")  // the node operator did not pay for that request, and a summary is recorded once
    }
}
