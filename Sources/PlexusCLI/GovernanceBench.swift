import ArgumentParser
import Foundation
import PlexusCore
import PlexusLedger

/// Vote tallying speed: the pure tally (linear and quadratic) over a million
/// ballots, and a million vote transactions applied by the ledger state
/// machine (every rule checked; signatures are the ledger bench's subject).
struct GovernanceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "governance", abstract: "Tally speed: a million ballots counted, linear and quadratic, and a million vote transactions applied.")

    @Option(name: .long, help: "Ballots.") var votes: Int = 1_000_000
    @Flag(name: .long, help: "Skip the state-machine part (which builds a state with one staked account per vote).") var tallyOnly = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Result: Codable {
        var benchmark = "governance"
        var votes: Int
        var tallyLinearSeconds: Double
        var tallyQuadraticSeconds: Double
        var quadraticSplitShare: Double
        var stateApplySeconds: Double?
        var stateCommitSeconds: Double?
        var stateVotesPerSecond: Double?
        var forVotes: UInt64?
        var againstVotes: UInt64?
        var abstainVotes: UInt64?

        enum CodingKeys: String, CodingKey {
            case benchmark, votes
            case tallyLinearSeconds = "tally_linear_s"
            case tallyQuadraticSeconds = "tally_quadratic_s"
            case quadraticSplitShare = "quadratic_split_share"
            case stateApplySeconds = "state_apply_s"
            case stateCommitSeconds = "state_commit_s"
            case stateVotesPerSecond = "state_votes_per_s"
            case forVotes = "for", againstVotes = "against", abstainVotes = "abstain"
        }
    }

    func validate() throws {
        guard votes >= 1, votes <= 10_000_000 else { throw ValidationError("--votes is 1...10000000") }
    }

    func progress(_ s: String) { benchProgress(s) }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    func run() async throws {
        var lot = LotStream(seed: Hash256.of(Array("plexus-bench-governance".utf8)).bytes)
        var powers = [UInt64](), ballots = [[UInt32]]()
        powers.reserveCapacity(votes)
        ballots.reserveCapacity(votes)
        var splits = 0
        for _ in 0..<votes {
            powers.append(1 + lot.uniform(1_000 * Amount.unitsPerPLX))
            let r = lot.next()
            if r % 3 == 0 {
                ballots.append([UInt32(r >> 8 & 0xff), UInt32(r >> 16 & 0xff) + 1, UInt32(r >> 24 & 0xff)])
                splits += 1
            } else {
                ballots.append(Choice(rawValue: Int(r >> 8 % 3) % 3)!.weights)
            }
        }
        let clock = ContinuousClock()
        var linear = Tally(quadratic: false)
        let single = ballots.map { b in b.count == 3 && b.filter({ $0 > 0 }).count == 1 ? b : Choice.for.weights }
        let t0 = clock.now
        for i in 0..<votes { linear.add(power: powers[i], weights: single[i]) }
        let linearScores = linear.scores
        let tLinear = Self.seconds(clock.now - t0)
        var quad = Tally(quadratic: true)
        let t1 = clock.now
        for i in 0..<votes { quad.add(power: powers[i], weights: ballots[i]) }
        let quadScores = quad.scores
        let tQuad = Self.seconds(clock.now - t1)
        var result = Result(votes: votes, tallyLinearSeconds: tLinear, tallyQuadraticSeconds: tQuad,
                            quadraticSplitShare: Double(splits) / Double(votes))
        if !json {
            print("tally of \(votes) ballots: linear \(String(format: "%.3f", tLinear)) s \(linearScores), quadratic \(String(format: "%.3f", tQuad)) s \(quadScores)")
        }
        if !tallyOnly {
            try stateBench(&result, powers: powers, choices: single)
        }
        if json { try printJSON(result) }
    }

    /// One staked account per vote at genesis, a proposal in the root
    /// community, then every account's vote applied as a transaction.
    func stateBench(_ result: inout Result, powers: [UInt64], choices: [[UInt32]]) throws {
        let n = powers.count
        progress("building a state with \(n) staked accounts")
        var accounts: [Address: Account] = [:]
        accounts.reserveCapacity(n + 1)
        var voters: [Address] = []
        voters.reserveCapacity(n)
        for i in 0..<n {
            var w = CanonicalWriter(capacity: 16)
            w.write(fixed: Array("bench-voter".utf8)); w.write(UInt64(i))
            let a = try Address(bytes: Hash256.of(w.bytes).bytes)
            var acct = Account()
            acct.balance = Amount(units: Amount.unitsPerPLX)
            acct.staked = Amount(units: powers[i])
            accounts[a] = acct
            voters.append(a)
        }
        var params = Params.defaults
        try params.set("votingPeriodBlocks", to: 100)
        var state = try LedgerState(chainId: "plexus-bench", params: params, accounts: accounts)
        _ = state.commit()
        _ = try state.beginBlock(height: 1, timeMillis: 1)
        let content = ProposalContent(communities: [Governance.root], title: "bench", actions: [.setParam(name: "protocolFeeBps", value: 400)])
        let fee = params.minFee
        _ = try state.apply(Transaction(chainId: "plexus-bench", from: voters[0], nonce: 0, fee: fee, body: .propose(content), signature: .empty))
        let id = content.id
        for h in 2...3 { _ = try state.beginBlock(height: UInt64(h), timeMillis: UInt64(h)) }
        let txs = (0..<n).map { i in
            Transaction(chainId: "plexus-bench", from: voters[i], nonce: i == 0 ? 1 : 0, fee: fee,
                        body: .vote(proposal: id, weights: choices[i]), signature: .empty)
        }
        progress("applying \(n) votes")
        let clock = ContinuousClock()
        let t0 = clock.now
        for tx in txs { _ = try state.apply(tx) }
        let tApply = Self.seconds(clock.now - t0)
        let t1 = clock.now
        _ = state.commit()
        let tCommit = Self.seconds(clock.now - t1)
        let view = state.proposalView(id)
        result.stateApplySeconds = tApply
        result.stateCommitSeconds = tCommit
        result.stateVotesPerSecond = Double(n) / tApply
        if let v = view?.votes.first {
            result.forVotes = v.tally.forVotes
            result.againstVotes = v.tally.againstVotes
            result.abstainVotes = v.tally.abstainVotes
        }
        if !json {
            print("state machine: \(n) vote transactions applied in \(String(format: "%.3f", tApply)) s (\(Int(Double(n) / tApply))/s), committed in \(String(format: "%.3f", tCommit)) s")
        }
    }
}
