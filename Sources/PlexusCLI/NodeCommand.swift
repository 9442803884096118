import ArgumentParser
import Foundation
import Logging
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Run an inference node.", subcommands: [Start.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve a model to gateways, registered on the ledger with the key's stake.")

        @OptionGroup var ledger: LedgerURLOptions
        @OptionGroup var keyOptions: KeyOptions
        @Option(name: .long, help: "Model card id (and, for the built-in engine, a store name or .gguf path via --weights).") var model: String = "smollm2-135m"
        @Option(name: .long, help: "Weights: a model store name or .gguf path (default: the model id).") var weights: String?
        @Option(name: .long, help: "Price per million input tokens, in PLX.") var priceIn: Amount
        @Option(name: .long, help: "Price per million output tokens, in PLX.") var priceOut: Amount
        @Option(name: .long, help: "engine (built-in) or echo (synthetic, for benchmarking gateways).") var backend: String = "engine"
        @Option(name: .long, help: "Front this OpenAI-compatible server (llama.cpp's server, vLLM, Ollama) instead of the built-in engine.") var upstream: String?
        @Option(name: .long, help: "With --upstream: the model name the server knows (default: --model).") var upstreamModel: String?
        @Option(name: .long, help: "With --upstream: an API key for it (or PLEXUS_UPSTREAM_KEY).") var upstreamKey: String?
        @Option(name: .long, help: "With --upstream: SHA-256 of the weights it serves, as on the model card (default: that of --weights).") var weightsHash: String?
        @Option(name: .long, help: "Requests served at once.") var concurrency: Int = 4
        @Option(name: .long, help: "Engine threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(name: .long, help: "Address to listen on.") var host: String = "127.0.0.1"
        @Option(name: .long, help: "Port (0 picks a free one).") var port: Int = 0
        @Option(name: .long, help: "Region advertised in the offer.") var region: String = "local"
        @Option(name: .long, help: "Model store directory.") var store: String?
        @Option(name: .long, help: "Write the bound port to this file once listening.") var portFile: String?
        @Option(name: .long, help: "Drill (development chains only): cheat as quant-swap, layer-skip, wrong-seed, tamper, random, replay or bad-commitment.")
        var adversary: String?
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard ["engine", "echo"].contains(backend) else { throw ValidationError("--backend is engine or echo") }
            guard (1...1024).contains(concurrency) else { throw ValidationError("--concurrency must be 1...1024") }
            guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64") }
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        }

        func run() async throws {
            Bootstrap.run(level: log.level)
            StopSignals.followParent()
            Bootstrap.tasksOnEventLoops()
            let logger = Logger(label: "plexus.node")
            let key = try keyOptions.load()
            let engine: any GenerationBackend
            if let upstream {
                let hash: Hash256
                if let weightsHash {
                    hash = try Hash256(hex: weightsHash)
                } else {
                    hash = try Hash256(hex: try ModelStore.sha256(ofFile: try ModelStore(directory: store).resolve(weights ?? model)))
                }
                engine = UpstreamBackend(baseURL: upstream, upstreamModel: upstreamModel ?? model, modelHash: hash, contextLength: 8192,
                                         apiKey: upstreamKey ?? ProcessInfo.processInfo.environment["PLEXUS_UPSTREAM_KEY"])
            } else if backend == "echo" {
                engine = EchoBackend()
                logger.warning("serving the synthetic echo backend (for benchmarks), not a model")
            } else {
                let store = ModelStore(directory: self.store)
                let path = try store.resolve(weights ?? model)
                let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
                if let adversary {
                    guard let mode = AdversaryMode(rawValue: adversary) else {
                        throw ValidationError("--adversary must be one of \(AdversaryMode.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    let chain = try await LedgerClient(baseURL: ledger.ledger).status().chainId
                    guard AdversaryMode.allowed(onChain: chain) else {
                        throw ValidationError("--adversary is a drill for development chains; '\(chain)' is not one")
                    }
                    var served = path
                    if mode.changesWeights {
                        served = NSTemporaryDirectory() + "plexus-drill-\(mode.rawValue)-\(key.address.short)-\(getpid()).gguf"
                        try mode.deriveWeights(from: path, to: served)
                    }
                    engine = AdversaryBackend(inner: try EngineBackend(path: served, weightsHash: hash, threads: threads), mode: mode)
                    logger.warning("ADVERSARY DRILL: this node cheats", metadata: ["mode": "\(mode.rawValue)"])
                } else {
                    engine = try EngineBackend(path: path, weightsHash: hash, threads: threads)
                }
            }
            var config = NodeConfig(ledgerURL: ledger.ledger, key: key, model: model, priceIn: priceIn, priceOut: priceOut)
            config.host = host
            config.port = port
            config.concurrency = concurrency
            // A drill says so in its registration too.
            config.region = adversary.map { "drill:" + $0 } ?? region
            let final = config
            let server = NodeServer(config: final, backend: engine, logger: logger, metrics: { Bootstrap.metricsText() })
            let client = LedgerClient(baseURL: ledger.ledger)
            let portFile = self.portFile, host = self.host
            try await server.run { bound in
                let endpoint = "http://\(host):\(bound)"
                try await NodeServer.register(final, backend: engine, endpoint: endpoint, ledger: client)
                logger.notice("node listening", metadata: ["address": "\(endpoint)", "node": "\(key.address.short)", "backend": "\(engine.name)"])
                if let portFile {
                    try? AtomicFile.write(Array("\(bound)\n".utf8), to: portFile)
                }
            }
        }
    }
}
