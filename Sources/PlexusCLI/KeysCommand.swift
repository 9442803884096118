import ArgumentParser
import PlexusCore

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create and show Ed25519 account keys.",
        subcommands: [New.self, Show.self])

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key file (mode 0600) and print its address.")

        @Option(name: .long, help: "Where to write the key (default: $PLEXUS_HOME/keys/default.json).")
        var out: String?

        @Flag(name: .long, help: "Overwrite an existing key file.")
        var force = false

        func run() async throws {
            let path = out ?? PlexusHome.defaultKey
            let key = KeyPair()
            try KeyFile.write(key, to: path, overwrite: force)
            print(key.address.text)
            print("key written to \(path)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the address of a key file.")

        @OptionGroup var key: KeyOptions

        func run() async throws {
            print(try key.load().address.text)
        }
    }
}
