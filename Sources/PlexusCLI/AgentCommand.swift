import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

/// `plexus agent`: let an account spend your escrow within a policy, revoke it, pay for calls.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Agents with budgets: accounts that call the network for their payer, within a policy.",
        subcommands: [Grant.self, Revoke.self, Show.self, Pay.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let AGENT spend your escrow: a budget per period, a most per request, allowed models, an expiry (sent again: a new policy).")
        @Argument(help: "The agent's address.") var agent: Address
        @Option(name: .long, help: "PLX the agent may spend per period.") var budget: Amount
        @Option(name: .long, help: "Blocks in a period (the budget renews each period, counted from the grant).") var periodBlocks: UInt64 = 1_000
        @Option(name: .long, help: "The most one request (or paid call) may cost, in PLX.") var maxPrice: Amount
        @Option(name: .long, help: "A model the agent may call (repeat; none: any).") var model: [String] = []
        @Option(name: .long, help: "Blocks from now until the grant expires (0: never).") var expiresIn: UInt64 = 0
        @OptionGroup var options: TxOptions

        func run() async throws {
            var expires: UInt64 = 0
            if expiresIn > 0 {
                let (h, o) = try await LedgerClient(baseURL: options.ledger.ledger).status().height.addingReportingOverflow(expiresIn)
                guard !o else { throw ValidationError("--expires-in is too far") }
                expires = h
            }
            let policy = AgentPolicy(budget: budget, periodBlocks: periodBlocks, maxPerRequest: maxPrice, models: model, expiresHeight: expires)
            do { try policy.validate() } catch let e as PlexusError { throw ValidationError(e.message) }
            try await options.send(.grantAgent(agent: agent, policy: policy))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End your grant to AGENT at once: its requests are refused from now on.")
        @Argument(help: "The agent's address.") var agent: Address
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.revokeAgent(agent: agent)) }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An agent's payer, policy and what it may still spend this period.")
        @Argument(help: "The agent's address.") var agent: Address
        @OptionGroup var ledger: LedgerURLOptions
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() async throws {
            guard let v = try await LedgerClient(baseURL: ledger.ledger).agent(agent) else { throw PlexusError(.notFound, "\(agent) is no agent") }
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(v), as: UTF8.self))
                return
            }
            let p = v.grant.policy
            print("""
                agent      \(v.grant.agent)
                payer      \(v.grant.payer) (escrow \(v.payerEscrow))
                state      \(v.active ? "active" : (v.grant.revoked ? "revoked" : "expired"))
                budget     \(p.budget) per \(p.periodBlocks) blocks; \(v.remaining) left in the period from height \(v.periodStart)
                per call   at most \(p.maxPerRequest)
                models     \(p.models.isEmpty ? "any" : p.models.joined(separator: ", "))
                expires    \(p.expiresHeight == 0 ? "never" : "at height \(p.expiresHeight)")
                """)
        }
    }

    struct Pay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pay an account for a call, tied to the settled request it made to serve it (once per request; an agent pays from its payer's escrow).")
        @Option(name: .long, help: "The account paid (the one whose request served the call).") var to: Address
        @Option(name: .long, help: "Amount in PLX.") var amount: Amount
        @Option(name: .long, help: "The request id (x-plexus-request-id) the payment is tied to.") var request: String
        @OptionGroup var options: TxOptions
        func run() async throws {
            guard let id = try? Hash256(hex: request) else { throw ValidationError("--request takes a request id: 64 hex digits") }
            try await options.send(.payForCall(to: to, amount: amount, requestId: id))
        }
    }
}
