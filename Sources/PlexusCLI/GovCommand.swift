import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

struct GovCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gov", abstract: "Governance: proposals, votes, delegation, parameters, fairness analysis.",
        subcommands: [Propose.self, Vote.self, Delegate.self, Queue.self, Execute.self, Cancel.self, Show.self, List.self,
                      Params.self, Voter.self, Federation.self, Analyze.self, Summarize.self])

    struct Propose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a proposal (a text signal if it has no actions).",
            discussion: """
            Actions: --set NAME=VALUE (protocol parameter), --set-community C:NAME=VALUE, --scheme C=SCHEME, \
            --open C=true|false, --list-model M, --delist-model M, --delist-dataset ID, --relist-dataset ID, --spend ADDRESS=PLX, \
            --grant-reputation ADDRESS=POINTS, \
            --federation-join C, --federation-leave C. Every community an action touches must be named with --community \
            (protocol-wide actions touch 'plexus').
            """)
        @Option(name: .long, help: "A community that votes (repeat for several; each must approve).") var community: [String] = []
        @Option(name: .long, help: "Title.") var title: String
        @Option(name: .long, help: "Description.") var description: String = ""
        @Option(name: .long, help: "NAME=VALUE: set a protocol parameter.") var set: [String] = []
        @Option(name: .long, help: "COMMUNITY:NAME=VALUE: set a community's setting.") var setCommunity: [String] = []
        @Option(name: .long, help: "COMMUNITY=SCHEME: change a voting scheme.") var scheme: [String] = []
        @Option(name: .long, help: "COMMUNITY=true|false: open a community or require admission.") var open: [String] = []
        @Option(name: .long, help: "List a model.") var listModel: [String] = []
        @Option(name: .long, help: "Delist a model.") var delistModel: [String] = []
        @Option(name: .long, help: "Stop sales of a dataset (a licence violation).") var delistDataset: [String] = []
        @Option(name: .long, help: "Resume sales of a delisted dataset.") var relistDataset: [String] = []
        @Option(name: .long, help: "ADDRESS=PLX: pay from the treasury.") var spend: [String] = []
        @Option(name: .long, help: "ADDRESS=POINTS: award reputation.") var grantReputation: [String] = []
        @Option(name: .long, help: "Add a community to the federation.") var federationJoin: [String] = []
        @Option(name: .long, help: "Remove a community from the federation.") var federationLeave: [String] = []
        @OptionGroup var options: TxOptions

        func actions() throws -> [ProposalAction] {
            func pair(_ s: String, _ sep: Character) throws -> (String, String) {
                guard let i = s.firstIndex(of: sep) else { throw ValidationError("expected A\(sep)B, got '\(s)'") }
                return (String(s[..<i]), String(s[s.index(after: i)...]))
            }
            func number(_ s: String) throws -> UInt64 {
                guard let v = UInt64(s) else { throw ValidationError("'\(s)' is not a whole number") }
                return v
            }
            var out: [ProposalAction] = []
            for s in set { let (n, v) = try pair(s, "="); out.append(.setParam(name: n, value: try number(v))) }
            for s in setCommunity {
                let (c, rest) = try pair(s, ":"); let (n, v) = try pair(rest, "=")
                out.append(.setCommunityParam(community: c, name: n, value: try number(v)))
            }
            for s in scheme { let (c, v) = try pair(s, "="); out.append(.setScheme(community: c, scheme: try VotingScheme(name: v))) }
            for s in open {
                let (c, v) = try pair(s, "=")
                guard let b = Bool(v) else { throw ValidationError("--open takes COMMUNITY=true|false") }
                out.append(.setOpen(community: c, open: b))
            }
            out += listModel.map { .listModel($0) } + delistModel.map { .delistModel($0) }
            out += try delistDataset.map { .delistDataset(try Hash256(hex: $0)) } + relistDataset.map { .relistDataset(try Hash256(hex: $0)) }
            for s in spend {
                let (a, v) = try pair(s, "=")
                out.append(.treasurySpend(to: try Address(a), amount: try Amount(parsing: v)))
            }
            for s in grantReputation { let (a, v) = try pair(s, "="); out.append(.grantReputation(account: try Address(a), points: try number(v))) }
            out += federationJoin.map { .federationJoin($0) } + federationLeave.map { .federationLeave($0) }
            return out
        }

        func run() async throws {
            let acts = try actions()
            var named = community
            if named.isEmpty { named = Array(Set(acts.flatMap(\.touches))).sorted() }
            if named.isEmpty { named = [Governance.root] }
            let content = ProposalContent(communities: named, title: title, description: description, actions: acts)
            try await options.send(.propose(content))
            print("proposal \(content.id)")
        }
    }

    struct Vote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Vote on an active proposal.")
        @Argument(help: "Proposal id.") var id: Hash256
        @Option(name: .long, help: "for, against or abstain.") var choice: String?
        @Option(name: .long, help: "AGAINST,FOR,ABSTAIN weights (quadratic communities may split).") var weights: String?
        @OptionGroup var options: TxOptions

        func run() async throws {
            let w: [UInt32]
            if let weights {
                let parts = weights.split(separator: ",").map { UInt32($0.trimmingCharacters(in: .whitespaces)) }
                guard parts.count == 3, parts.allSatisfy({ $0 != nil }) else { throw ValidationError("--weights takes AGAINST,FOR,ABSTAIN") }
                w = parts.map { $0! }
            } else if let choice {
                w = try Choice(name: choice).weights
            } else {
                throw ValidationError("give --choice or --weights")
            }
            try await options.send(.vote(proposal: id, weights: w))
        }
    }

    struct Delegate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lend your stake's voting power to another account (yourself to take it back).")
        @Option(name: .long, help: "The delegate.") var to: Address
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.delegate(to: to)) }
    }

    struct Queue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a succeeded proposal behind the timelock.")
        @Argument(help: "Proposal id.") var id: Hash256
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.queue(proposal: id)) }
    }

    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Execute a queued proposal whose timelock has passed.")
        @Argument(help: "Proposal id.") var id: Hash256
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.execute(proposal: id)) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel your own proposal while it is pending.")
        @Argument(help: "Proposal id.") var id: Hash256
        @OptionGroup var options: TxOptions
        func run() async throws { try await options.send(.cancel(proposal: id)) }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a proposal: state, timeline, tallies.")
        @Argument(help: "Proposal id.") var id: Hash256
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var ledger: LedgerURLOptions

        func run() async throws {
            let p = try await LedgerClient(baseURL: ledger.ledger).proposal(id)
            if json { try printJSON(p); return }
            GovCommand.describe(p)
        }
    }

    static func describe(_ p: ProposalView) {
        print("\(p.id)  \(p.state.rawValue)")
        print("  \(p.title)")
        if !p.description.isEmpty { print("  \(p.description)") }
        print("  proposer \(p.proposer); created \(p.createdHeight), snapshot \(p.snapshot), deadline \(p.deadline)\(p.extended ? " (extended)" : "")"
              + (p.eta.map { ", eta \($0), expires \(p.expiresAt ?? 0)" } ?? ""))
        for a in p.actions { print("  action: \(a)") }
        for c in p.counts {
            print("  \(c.community) (\(c.scheme.name)): for \(c.forVotes), against \(c.againstVotes), abstain \(c.abstainVotes); "
                  + "\(c.voters) voters; quorum \(c.quorum.map(String.init) ?? "-") of \(c.totalPower.map(String.init) ?? "-") \(c.quorumReached ? "reached" : "not reached")")
        }
        if let s = p.summary { print("  summary \(s.summaryHash) by \(s.model), request \(s.requestId)") }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List proposals.")
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var ledger: LedgerURLOptions

        func run() async throws {
            let list = try await LedgerClient(baseURL: ledger.ledger).proposals()
            if json { try printJSON(["proposals": list]); return }
            if list.isEmpty { print("no proposals") }
            for p in list { print("\(p.id)  \(p.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  \(p.communities.joined(separator: ","))  \(p.title)") }
        }
    }

    struct Params: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Protocol parameters with their bounds (only executed proposals change them).")
        @Flag(name: .long, help: "JSON output.") var json = false
        @OptionGroup var ledger: LedgerURLOptions

        func run() async throws {
            let view = try await LedgerClient(baseURL: ledger.ledger).params()
            if json { try printJSON(view); return }
            for p in view.params { print("\(p.name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(p.value)  [\(p.min)…\(p.max)]  \(p.summary)") }
        }
    }

    struct Voter: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An account's delegate, voting power, reputation and communities.")
        @Argument(help: "Address (default: your key's).") var address: Address?
        @OptionGroup var key: KeyOptions
        @OptionGroup var ledger: LedgerURLOptions

        func run() async throws {
            let a = try address ?? key.load().address
            try printJSON(try await LedgerClient(baseURL: ledger.ledger).voter(a))
        }
    }

    struct Federation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The federation: member communities, seats and the assembly.")
        @OptionGroup var ledger: LedgerURLOptions
        func run() async throws { try printJSON(try await LedgerClient(baseURL: ledger.ledger).federation()) }
    }
}

extension Hash256: ExpressibleByArgument {
    public init?(argument: String) { try? self.init(hex: argument) }
}
