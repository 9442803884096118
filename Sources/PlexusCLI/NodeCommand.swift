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
        @Option(name: .long, help: "Requests served at once (the built-in engine's batch slots: they share each forward pass).") var concurrency: Int = 4
        @Option(name: .long, help: "Requests per second one gateway may send this node (0: no limit; every active gateway is owed a fair share of the slots anyway).")
        var gatewayRps: Double = 0
        @Option(name: .long, help: "Requests one gateway may send at once above --gateway-rps (default: twice the rate, at least 1).") var gatewayBurst: Double?
        @Option(name: .long, help: "Requests one gateway may have in flight here (0: up to the node's --concurrency).") var gatewayConcurrency: Int = 0
        @Option(name: .long, help: "With --backend echo: milliseconds per token, to stand in for generation time.") var echoTokenMs: Int = 0
        @Option(name: .long, help: "Built-in engine: tokens one batched step runs at most (decode tokens first, then prompt chunks).") var stepTokens: Int = 32
        @Option(name: .long, help: "Built-in engine: MiB of recent prompts' KV cache kept for reuse (0: none).") var prefixCacheMb: Int = 64
        @Option(name: .long, help: "Serve only layers A-B (from A up to, not including, B) as one shard of pipelines; the first shard also embeds tokens, the last samples.")
        var layers: String?
        @Option(name: .long, help: "Engine threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(name: .long, help: "Address to listen on.") var host: String = "127.0.0.1"
        @Option(name: .long, help: "Port (0 picks a free one).") var port: Int = 0
        @Option(name: .long, help: "The URL registered on the ledger, where gateways reach this node (default: http://HOST:PORT), e.g. behind a proxy or NAT.")
        var publicUrl: String?
        @Option(name: .long, help: "With --layers: the port of the frame link for pipeline steps (0 picks a free one).") var framePort: Int = 0
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
            guard (0...65535).contains(port), (0...65535).contains(framePort) else { throw ValidationError("--port and --frame-port must be 0...65535") }
            if let publicUrl { guard publicUrl.hasPrefix("http://") || publicUrl.hasPrefix("https://") else { throw ValidationError("--public-url must be an http(s) URL") } }
            guard gatewayRps >= 0, gatewayRps.isFinite, (gatewayBurst ?? 1) >= 1, (gatewayBurst ?? 1).isFinite, gatewayConcurrency >= 0 else {
                throw ValidationError("--gateway-rps and --gateway-concurrency must be 0 or more, --gateway-burst 1 or more")
            }
            guard (0...10_000).contains(echoTokenMs), echoTokenMs == 0 || backend == "echo" else { throw ValidationError("--echo-token-ms is 0...10000, with --backend echo") }
            guard (1...4096).contains(stepTokens) else { throw ValidationError("--step-tokens must be 1...4096") }
            guard (0...1_048_576).contains(prefixCacheMb) else { throw ValidationError("--prefix-cache-mb must be 0...1048576") }
            if layers != nil {
                guard backend == "engine", upstream == nil, adversary == nil || adversary == "tamper" else {
                    throw ValidationError("--layers serves the built-in engine, without --upstream; of the drills, only --adversary tamper")
                }
                _ = try Self.parseLayers(layers!)
            }
        }

        /// "A-B" as a range.
        static func parseLayers(_ text: String) throws -> Range<Int> {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a < b else {
                throw ValidationError("--layers takes A-B with 0 ≤ A < B, e.g. 0-15")
            }
            return a..<b
        }

        func run() async throws {
            Bootstrap.run(level: log.level)
            StopSignals.followParent()
            Bootstrap.tasksOnEventLoops()
            let logger = Logger(label: "plexus.node")
            let key = try keyOptions.load()
            let engine: any GenerationBackend
            var shard: ShardService?
            if let layers {
                let path = try ModelStore(directory: store).resolve(weights ?? model)
                let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
                let range = try Self.parseLayers(layers)
                let total = try LlamaConfig(gguf: try GGUFFile(path: path)).layers
                guard range.upperBound <= total else { throw ValidationError("--layers \(layers) is past the model's \(total) layers") }
                guard range != 0..<total else { throw ValidationError("--layers \(layers) is the whole model: leave --layers out") }
                let shardEngine = try ShardEngine(model: try LlamaModel(path: path, layers: range), layers: range, slots: concurrency,
                                                  stepTokens: max(stepTokens, 64), threads: threads)
                if adversary != nil {
                    let chain = try await LedgerClient(baseURL: ledger.ledger).status().chainId
                    guard AdversaryMode.allowed(onChain: chain) else { throw ValidationError("--adversary is a drill for development chains; '\(chain)' is not one") }
                    guard range.upperBound < total else { throw ValidationError("--adversary tamper alters the states a shard sends on: not for the last shard") }
                    // Nudges one value of every state sent on.
                    let dim = shardEngine.model.config.embedding
                    shardEngine.drill = { h in for i in stride(from: 0, to: h.count, by: dim) { h[i] += 0.5 } }
                    logger.warning("ADVERSARY DRILL: this shard alters the states it sends", metadata: ["mode": "tamper"])
                }
                let service = try ShardService(engine: shardEngine, modelHash: hash, key: key, model: model, priceIn: priceIn, priceOut: priceOut)
                shard = service
                engine = ShardOnlyBackend(service)
            } else if let upstream {
                let hash: Hash256
                if let weightsHash {
                    hash = try Hash256(hex: weightsHash)
                } else {
                    hash = try Hash256(hex: try ModelStore.sha256(ofFile: try ModelStore(directory: store).resolve(weights ?? model)))
                }
                engine = UpstreamBackend(baseURL: upstream, upstreamModel: upstreamModel ?? model, modelHash: hash, contextLength: 8192,
                                         apiKey: upstreamKey ?? ProcessInfo.processInfo.environment["PLEXUS_UPSTREAM_KEY"])
            } else if backend == "echo" {
                engine = EchoBackend(tokenDelayMillis: echoTokenMs)
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
                    engine = AdversaryBackend(inner: try EngineBackend(path: served, weightsHash: hash, threads: threads, slots: concurrency,
                                                                      stepTokens: stepTokens, prefixCacheBytes: prefixCacheMb << 20), mode: mode)
                    // The derived weights are mapped now; the file goes at once, so that no drill leaves one behind.
                    if served != path { unlink(served) }
                    logger.warning("ADVERSARY DRILL: this node cheats", metadata: ["mode": "\(mode.rawValue)"])
                } else {
                    engine = try EngineBackend(path: path, weightsHash: hash, threads: threads, slots: concurrency, stepTokens: stepTokens,
                                               prefixCacheBytes: prefixCacheMb << 20)
                }
            }
            var config = NodeConfig(ledgerURL: ledger.ledger, key: key, model: model, priceIn: priceIn, priceOut: priceOut)
            config.host = host
            config.port = port
            config.publicURL = publicUrl
            config.framePort = framePort
            config.concurrency = concurrency
            config.gatewayLimits = RateLimits(requestsPerSecond: gatewayRps, burst: gatewayBurst ?? max(1, 2 * gatewayRps), concurrency: gatewayConcurrency)
            // A drill says so in its registration too.
            config.region = adversary.map { "drill:" + $0 } ?? region
            config.layers = (shard as ShardService?)?.span
            let final = config
            let server = NodeServer(config: final, backend: engine, shard: shard, logger: logger, metrics: { Bootstrap.metricsText() })
            let client = LedgerClient(baseURL: ledger.ledger)
            let portFile = self.portFile, host = self.host
            try await server.run { bound in
                let endpoint = final.publicURL ?? "http://\(host):\(bound)"
                try await NodeServer.register(final, backend: engine, endpoint: endpoint, ledger: client)
                logger.notice("node listening", metadata: ["address": "\(endpoint)", "node": "\(key.address.short)", "backend": "\(engine.name)"])
                if let portFile {
                    try? AtomicFile.write(Array("\(bound)\n".utf8), to: portFile)
                }
            }
        }
    }
}
