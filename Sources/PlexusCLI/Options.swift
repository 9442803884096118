import ArgumentParser
import Foundation
import Logging
import PlexusCore

/// Where Plexus keeps its files: `$PLEXUS_HOME`, else `~/.plexus`.
enum PlexusHome {
    static var path: String {
        if let h = ProcessInfo.processInfo.environment["PLEXUS_HOME"], !h.isEmpty { return h }
        return (UserHome.path as NSString).appendingPathComponent(".plexus")
    }

    static var defaultKey: String { path + "/keys/default.json" }
}

/// `--key FILE`.
struct KeyOptions: ParsableArguments {
    @Option(name: .long, help: "Key file (default: $PLEXUS_HOME/keys/default.json).")
    var key: String?

    var keyPath: String { key ?? PlexusHome.defaultKey }

    func load() throws -> KeyPair { try KeyFile.read(keyPath) }
}

/// `--ledger URL`.
struct LedgerURLOptions: ParsableArguments {
    @Option(name: .long, help: "Ledger API base URL.")
    var ledger: String = ProcessInfo.processInfo.environment["PLEXUS_LEDGER"] ?? "http://127.0.0.1:7700"
}

/// `--log-level`.
struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["PLEXUS_LOG"] ?? "notice"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
    }

    var level: Logger.Level { Logger.Level(rawValue: logLevel) ?? .notice }
}

extension Amount: ExpressibleByArgument {
    public init?(argument: String) { try? self.init(parsing: argument) }
}

extension Address: ExpressibleByArgument {
    public init?(argument: String) { try? self.init(argument) }
}

/// Prints a value as pretty JSON.
func printJSON<T: Encodable>(_ value: T) throws {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}
