import ArgumentParser
import PlexusCore
import PlexusLedger

struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Read accounts from a ledger.",
        subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an account (default: your key's).")

        @Argument(help: "Address (plx…); default: the address of --key.")
        var address: Address?

        @OptionGroup var key: KeyOptions
        @OptionGroup var ledger: LedgerURLOptions

        @Flag(name: .long, help: "Print JSON with amounts in base units.")
        var json = false

        func run() async throws {
            let who = try address ?? key.load().address
            let view = try await LedgerClient(baseURL: ledger.ledger).account(who)
            if json {
                try printJSON(view)
                return
            }
            print("address   \(view.address)")
            print("balance   \(view.balance)")
            print("nonce     \(view.nonce)")
            print("staked    \(view.staked)")
            for u in view.unbonding { print("unbonding \(u.amount) at height \(u.releaseHeight)") }
            print("escrow    \(view.escrow)")
            for u in view.escrowUnlocking { print("unlocking \(u.amount) at height \(u.releaseHeight)") }
        }
    }
}
