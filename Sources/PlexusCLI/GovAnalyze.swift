import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

extension GovCommand {
    struct Analyze: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Concentration of voting power per scheme: Gini, Nakamoto coefficient, top-1% share.",
            discussion: """
            Reads the live ledger's holders (stake and reputation), a distribution file \
            ({"holders": [{"tokens": N, "reputation": N}, ...]}), or with --whales builds one where 1% of \
            the holders have 80% of the tokens.
            """)
        @Option(name: .long, help: "Distribution file (JSON).") var file: String?
        @Flag(name: .long, help: "Analyse a whale-heavy distribution (1% of holders with 80% of tokens).") var whales = false
        @Option(name: .long, help: "Holders in the --whales distribution.") var holders: Int = 10_000
        @Option(name: .long, help: "Council and sortition seats.") var councilSize: Int = 21
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var ledger: LedgerURLOptions

        struct Row: Codable {
            var scheme: String
            var measure: Concentration
        }

        struct Report: Codable {
            var source: String
            var holders: Int
            var councilSize: Int
            var schemes: [Row]
        }

        func validate() throws {
            guard holders >= 1, holders <= 10_000_000 else { throw ValidationError("--holders is 1...10000000") }
            guard councilSize >= 1 else { throw ValidationError("--council-size must be positive") }
        }

        func run() async throws {
            let dist: [FairnessAnalysis.Holder]
            let source: String
            if let file {
                struct File: Decodable { var holders: [FairnessAnalysis.Holder] }
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                if let f = try? JSONDecoder().decode(File.self, from: data) {
                    dist = f.holders
                } else {
                    dist = try JSONDecoder().decode([FairnessAnalysis.Holder].self, from: data)
                }
                source = file
            } else if whales {
                dist = FairnessAnalysis.whaleHeavy(count: holders, totalTokens: 1_000_000_000 * Amount.unitsPerPLX, whaleShare: 0.8,
                                                   seed: Hash256.of(Array("plexus-analysis".utf8)).bytes)
                source = "whale-heavy: \(holders) holders, 1% hold 80% of tokens"
            } else {
                dist = try await LedgerClient(baseURL: ledger.ledger).holders()
                source = "ledger \(ledger.ledger)"
            }
            let tokens = dist.map(\.tokens)
            let seed = Hash256.of(Array("plexus-analysis-draw".utf8)).bytes
            let schemes: [VotingScheme] = [.token, .quadratic, .reputation, .member, .council, .sortition]
            let rows = schemes.map { s in
                Row(scheme: s.name, measure: Concentration.measure(
                    power: FairnessAnalysis.power(dist, scheme: s, councilSize: councilSize, seed: seed), tokens: tokens))
            }
            let report = Report(source: source, holders: dist.count, councilSize: councilSize, schemes: rows)
            if json { try printJSON(report); return }
            print("\(report.source) (\(report.holders) holders, councils of \(councilSize))")
            print("scheme       gini   nakamoto  top-1%  wealthiest-1%")
            for r in rows {
                let m = r.measure
                print(r.scheme.padding(toLength: 11, withPad: " ", startingAt: 0)
                      + String(format: "  %.3f  %8d  %5.1f%%  %5.1f%%", m.gini, m.nakamoto, m.top1PercentShare * 100, m.wealthiest1PercentShare * 100))
            }
        }
    }

    struct Summarize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the network for a summary of a proposal and record its hash, model and request on the proposal.",
            discussion: "The key must belong to the account the API key bills: the ledger checks that it paid for the request.")
        @Argument(help: "Proposal id.") var id: Hash256
        @Option(name: .long, help: "Gateway base URL (e.g. http://127.0.0.1:8080/v1).") var gateway: String
        @Option(name: .long, help: "Gateway API key.") var apiKey: String
        @Option(name: .long, help: "Model.") var model: String = LocalNetwork.model
        @Option(name: .long, help: "Most tokens in the summary.") var maxTokens: Int = 80
        @Option(name: .long, help: "Seconds to wait for the request to settle.") var settleTimeout: Double = 120
        @OptionGroup var options: TxOptions

        func run() async throws {
            let client = LedgerClient(baseURL: options.ledger.ledger)
            let p = try await client.proposal(id)
            let actions = p.actions.map { "\($0)" }.joined(separator: "; ")
            let prompt = "Summarize this governance proposal in two sentences.\nTitle: \(p.title)\nDescription: \(p.description)\n"
                + "Actions: \(actions.isEmpty ? "none (a text signal)" : actions)"
            let (resp, json) = try await DemoCommand.request(gateway + "/chat/completions", key: apiKey, body: [
                "model": model, "max_tokens": maxTokens, "temperature": 0, "messages": [["role": "user", "content": prompt]],
            ])
            guard resp.status == .ok, let choice = (json["choices"] as? [[String: Any]])?.first,
                  let message = choice["message"] as? [String: Any], let text = message["content"] as? String,
                  let rid = resp.headers.first(name: "x-plexus-request-id"), let requestId = try? Hash256(hex: rid) else {
                throw PlexusError(.io, "the gateway answered \(resp.status.code): \(json)")
            }
            let served = json["model"] as? String ?? model
            print(text.trimmingCharacters(in: .whitespacesAndNewlines))
            let hash = Hash256.of(Array(text.utf8))
            print("summary hash \(hash), request \(requestId); waiting for settlement…")
            let deadline = Date().addingTimeInterval(settleTimeout)
            while try await client.settlement(requestId) == nil {
                guard Date() < deadline else { throw PlexusError(.io, "request \(requestId) did not settle within \(Int(settleTimeout)) s") }
                try await Task.sleep(for: .milliseconds(500))
            }
            try await options.send(.recordSummary(proposal: id, summaryHash: hash, model: served, requestId: requestId))
        }
    }
}
