import ArgumentParser
import PlexusCore
import PlexusLedger

/// Options every transaction command shares.
struct TxOptions: ParsableArguments {
    @OptionGroup var key: KeyOptions
    @OptionGroup var ledger: LedgerURLOptions

    @Option(name: .long, help: "Fee in PLX (default: the ledger's minimum).")
    var fee: Amount?

    @Flag(name: .long, help: "Return once accepted, without waiting for the block to commit.")
    var noWait = false

    func send(_ body: Transaction.Body) async throws {
        let k = try key.load()
        let r = try await LedgerClient(baseURL: ledger.ledger).send(body, from: k, fee: fee, waitForCommit: !noWait)
        print("\(r.committed ? "committed" : "accepted") \(r.hash) in block \(r.height) at index \(r.index)")
    }
}

struct TxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx", abstract: "Sign and submit transactions.",
        subcommands: [Transfer.self, Stake.self, Unstake.self, Deposit.self, Withdraw.self])

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send PLX to an address.")
        @Option(name: .long, help: "Recipient address.") var to: Address
        @Option(name: .long, help: "Amount in PLX (or base units with a 'u' suffix).") var amount: Amount
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.transfer(to: to, amount: amount)) }
    }

    struct Stake: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bond PLX as stake.")
        @Option(name: .long, help: "Amount in PLX.") var amount: Amount
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.stake(amount: amount)) }
    }

    struct Unstake: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start unbonding stake (released after unbondingBlocks).")
        @Option(name: .long, help: "Amount in PLX.") var amount: Amount
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.unstake(amount: amount)) }
    }

    struct Deposit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put PLX into a requestor's escrow.")
        @Option(name: .long, help: "Requestor whose escrow is funded (default: yourself).") var requestor: Address?
        @Option(name: .long, help: "Amount in PLX.") var amount: Amount
        @OptionGroup var options: TxOptions
        func run() async throws {
            let who = try requestor ?? options.key.load().address
            try await options.send(.deposit(requestor: who, amount: amount))
        }
    }

    struct Withdraw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw your escrow (released after escrowWithdrawDelayBlocks).")
        @Option(name: .long, help: "Amount in PLX.") var amount: Amount
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.withdraw(amount: amount)) }
    }
}
