import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

struct CommunityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "community", abstract: "Communities: create, join, leave, fork, admit, approve council candidates, show.",
        subcommands: [Create.self, Join.self, Leave.self, Fork.self, Admit.self, Approve.self, Show.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Found a community (you become its first member).")
        @Argument(help: "Community id ([A-Za-z0-9._:-]).") var id: String
        @Option(name: .long, help: "Voting scheme: token, quadratic, reputation, member, council or sortition.") var scheme: String = "member"
        @Flag(name: .long, help: "Joining needs a member's approval (default: open).") var byApproval = false
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.createCommunity(id: id, scheme: try VotingScheme(name: scheme), open: !byApproval)) }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a community (or apply, if it admits by approval).")
        @Argument(help: "Community id.") var id: String
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.joinCommunity(id: id)) }
    }

    struct Leave: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Leave a community.")
        @Argument(help: "Community id.") var id: String
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.leaveCommunity(id: id)) }
    }

    struct Fork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fork a community: the new one keeps its settings, scheme and history; its members may follow without admission.")
        @Argument(help: "The community to fork.") var parent: String
        @Option(name: .customLong("as"), help: "The new community's id.") var newId: String
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.forkCommunity(parent: parent, id: newId)) }
    }

    struct Admit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Admit an applicant (as a member).")
        @Argument(help: "Community id.") var id: String
        @Option(name: .long, help: "The applicant.") var account: Address
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.admitMember(community: id, account: account)) }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve candidates for a community's elected council (replaces your earlier approvals).")
        @Argument(help: "Community id.") var id: String
        @Option(name: .long, help: "A candidate (repeat, up to councilApprovals).") var candidate: [Address] = []
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.approveCandidates(community: id, candidates: candidate)) }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a community: scheme, settings, members, council.")
        @Argument(help: "Community id.") var id: String
        @OptionGroup var ledger: LedgerURLOptions
        func run() async throws { try printJSON(try await LedgerClient(baseURL: ledger.ledger).community(id)) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List communities.")
        @OptionGroup var ledger: LedgerURLOptions
        func run() async throws {
            for c in try await LedgerClient(baseURL: ledger.ledger).communities() {
                print("\(c.id.padding(toLength: 20, withPad: " ", startingAt: 0)) \(c.scheme.name.padding(toLength: 10, withPad: " ", startingAt: 0)) "
                      + "\(c.memberCount) members\(c.open ? "" : ", by approval")\(c.forkedFrom.map { ", fork of \($0)" } ?? "")\(c.federated ? ", federated" : "")")
            }
        }
    }
}
