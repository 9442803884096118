import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

struct ShardsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards", abstract: "Pipelines of shard nodes: which layers of a model are served.",
        subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print which layer spans of a model shards serve, by how many operators, and the gaps.")
        @Argument(help: "Model card id.") var model: String = "smollm2-135m"
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var ledger: LedgerURLOptions

        func run() async throws {
            let c = try await LedgerClient(baseURL: ledger.ledger).shards(model)
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try e.encode(c), as: UTF8.self))
                return
            }
            print("\(model): \(c.summary)")
            for s in c.spans {
                print("  layers \(s.layers) of \(s.layers.total): \(s.operators) operator\(s.operators == 1 ? "" : "s") (\(s.nodes.map(\.short).joined(separator: ", ")))")
            }
            for g in c.gaps { print("  layers \(g) of \(g.total): no shard") }
        }
    }
}
