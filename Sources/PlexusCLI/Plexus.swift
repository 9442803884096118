import ArgumentParser
import Foundation

/// The `plexus` command.
@main
struct Plexus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plexus",
        abstract: "Plexus: an open inference network with a verifiable ledger.",
        subcommands: [KeysCommand.self, LedgerCommand.self, AccountCommand.self, TxCommand.self, ModelsCommand.self, RunCommand.self, VerifyCommand.self, VerifierCommand.self, ChallengeCommand.self, DisputesCommand.self, AgentCommand.self, MarketCommand.self, DataCommand.self, NodeCommand.self, GatewayCommand.self, UpCommand.self, DemoCommand.self, ShardsCommand.self, GovCommand.self, CommunityCommand.self, ExplorerCommand.self, BenchCommand.self]
    )

    static func main() async {
        // What plexus creates (keys, ledger and receipt stores, journals, logs, the model
        // store) is its owner's alone: files 0600, folders 0700, whatever the shell's umask.
        umask(0o077)
        await main(nil)
    }
}
