import ArgumentParser
import Foundation
import Logging
import PlexusCore
import PlexusExplorer
import PlexusLedger

/// `plexus explorer`: the network's web view, from the ledger's public API.
struct ExplorerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explorer",
        abstract: "Serve the explorer: a web view of the network (blocks, transactions, accounts, nodes, a request's trace, governance, markets), live.")

    @Option(name: .long, help: "Ledger API base URL(s), comma-separated (replicas are tried in turn).")
    var ledger: String = ProcessInfo.processInfo.environment["PLEXUS_LEDGER"] ?? "http://127.0.0.1:7700"
    @Option(name: .long, help: "A gateway whose public trace of a request the request page shows (repeat).") var gateway: [String] = []
    @Option(name: .long, help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(name: .long, help: "Port (0 picks a free one).") var port: Int = 8090
    @Option(name: .long, help: "Write the bound port to this file once listening.") var portFile: String?
    @Option(name: .long, help: "Blocks to read at start for rates, charts and activity.") var backfill: UInt64 = 2_000
    @Option(name: .long, help: "Keep the history charts' samples in this file (JSON lines), read back on start.") var history: String?
    @Option(name: .long, help: "Seconds between history samples.") var sampleEvery: Int = 60
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard backfill <= 1_000_000 else { throw ValidationError("--backfill must be at most 1000000") }
        guard (1...86_400).contains(sampleEvery) else { throw ValidationError("--sample-every must be 1...86400 seconds") }
    }

    func run() async throws {
        Bootstrap.run(level: log.level)
        StopSignals.followParent()
        Bootstrap.tasksOnEventLoops()
        let logger = Logger(label: "plexus.explorer")
        let explorer = try Explorer(ledger: LedgerClient(baseURL: ledger), gateways: gateway, backfill: backfill, historyFile: history,
                                    samplePeriod: .seconds(sampleEvery))
        let portFile = self.portFile, host = self.host
        try await ExplorerServer(explorer: explorer).run(host: host, port: port) { bound in
            logger.notice("explorer listening", metadata: ["address": "http://\(host):\(bound)/"])
            if let portFile { try? AtomicFile.write(Array("\(bound)\n".utf8), to: portFile) }
        }
    }
}
