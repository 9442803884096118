import ArgumentParser
import Foundation
import Logging
import PlexusCore
import PlexusGateway
import PlexusLedger

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Run an OpenAI-compatible gateway.", subcommands: [Start.self, Keys.self])

    static var defaultData: String { PlexusHome.path + "/gateway" }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve the OpenAI API over the network's nodes, settling on the ledger.")

        @OptionGroup var ledger: LedgerURLOptions
        @OptionGroup var keyOptions: KeyOptions
        @Option(name: .long, help: "Operator key: registers the gateway key on the ledger if it is not yet.") var ownerKey: String?
        @Option(name: .long, help: "Data directory (API keys, receipts).") var data: String?
        @Option(name: .long, help: "Address to listen on.") var host: String = "127.0.0.1"
        @Option(name: .long, help: "Port (0 picks a free one).") var port: Int = 8080
        @Option(name: .long, help: "Milliseconds between settlement batches.") var settleIntervalMs: Int = 2_000
        @Option(name: .long, help: "Seconds between service reports: the gateway probes its nodes and records what it measured of them (uptime, latency, throughput) on the ledger (0: never).") var reportEvery: Double = 30
        @Option(name: .long, help: "Write the bound port to this file once listening.") var portFile: String?
        @Option(name: .long, help: "Requests per second one API key may make (0: no limit).") var keyRps: Double = KeyLimits().requestsPerSecond
        @Option(name: .long, help: "Requests one API key may make at once above its rate.") var keyBurst: Double = KeyLimits().burst
        @Option(name: .long, help: "Requests one API key may have in flight (0: no limit).") var keyConcurrency: Int = KeyLimits().concurrency
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
            guard (50...600_000).contains(settleIntervalMs) else { throw ValidationError("--settle-interval-ms must be 50...600000") }
            guard reportEvery == 0 || (reportEvery >= 0.1 && reportEvery <= 3_600) else { throw ValidationError("--report-every must be 0 or 0.1...3600") }
            guard keyRps.isFinite, (0...1_000_000).contains(keyRps), keyBurst.isFinite, (1...1_000_000).contains(keyBurst),
                  (0...100_000).contains(keyConcurrency) else {
                throw ValidationError("--key-rps must be 0...1000000, --key-burst 1...1000000, --key-concurrency 0...100000")
            }
        }

        func run() async throws {
            Bootstrap.run(level: log.level)
            StopSignals.followParent()
            Bootstrap.tasksOnEventLoops()
            let logger = Logger(label: "plexus.gateway")
            let key = try keyOptions.load()
            let client = LedgerClient(baseURL: ledger.ledger)
            if let ownerKey { try await Gateway.register(key: key, owner: try KeyFile.read(ownerKey), ledger: client) }
            guard try await client.gateways().contains(where: { $0.key == key.address }) else {
                throw ValidationError("gateway key \(key.address) is not registered on the ledger; pass --owner-key to register it")
            }
            var config = GatewayConfig(ledgerURL: ledger.ledger, key: key, dataDirectory: data ?? GatewayCommand.defaultData)
            config.host = host
            config.port = port
            config.settleIntervalMillis = UInt64(settleIntervalMs)
            config.serviceReportMillis = UInt64(reportEvery * 1_000)
            config.keyLimits.requestsPerSecond = keyRps
            config.keyLimits.burst = keyBurst
            config.keyLimits.concurrency = keyConcurrency
            let gateway = try await Gateway(config: config, logger: logger)
            let server = GatewayServer(gateway: gateway, metrics: { Bootstrap.metricsText() })
            let portFile = self.portFile, host = self.host
            try await server.run { bound in
                logger.notice("gateway listening", metadata: ["address": "http://\(host):\(bound)/v1", "gateway": "\(key.address.short)"])
                if let portFile { try? AtomicFile.write(Array("\(bound)\n".utf8), to: portFile) }
            }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Manage API keys.", subcommands: [Create.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an API key whose requests are paid from ACCOUNT's escrow.")
            @Option(name: .long, help: "The ledger account that pays.") var account: Address
            @Option(name: .long, help: "Gateway data directory.") var data: String?

            func run() throws {
                let key = try APIKeys(path: (data ?? GatewayCommand.defaultData) + "/api-keys.json").create(account: account)
                print(key)
            }
        }
    }
}
