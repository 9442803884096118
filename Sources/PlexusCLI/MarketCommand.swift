import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

/// `plexus market`: the compute market's asks and spot premiums.
struct MarketCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "market", abstract: "The compute market: nodes' asks and each model's congestion premium.",
        subcommands: [Prices.self])

    struct Prices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each model's premium, utilization, every node's ask and what a request pays now (ask + premium), with the premium's recent changes.")
        @Option(name: .long, help: "One model (default: every model).") var model: String?
        @OptionGroup var ledger: LedgerURLOptions
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() async throws {
            let views = try await LedgerClient(baseURL: ledger.ledger).marketPrices(model: model)
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(views), as: UTF8.self))
                return
            }
            func plx(_ units: UInt64) -> String { Amount(units: units).description }
            for v in views {
                print("\(v.model) (\(v.quantization)) at height \(v.height): premium \(plx(v.premium)) per million tokens, utilization \(Double(v.utilizationBps) / 100)% of \(v.offeredSlots) slots")
                for a in v.asks {
                    print("  \(a.node.short)  ask in \(a.priceIn) out \(a.priceOut)  pays in \(plx(a.priceIn.units &+ v.premium)) out \(plx(a.priceOut.units &+ v.premium))  (\(a.concurrency) slots, context \(a.contextLength), \(a.region))")
                    print("      " + (a.service?.summary ?? "not measured yet"))
                }
                if !v.history.isEmpty {
                    print("  premium changes: " + v.history.suffix(8).map { "\(plx($0.premium)) from \($0.height)" }.joined(separator: ", "))
                }
            }
        }
    }
}
