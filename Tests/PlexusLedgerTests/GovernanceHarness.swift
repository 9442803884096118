import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit

/// A ledger state driven block by block for governance tests: account `i`
/// is `net.keys[i]`; every block's parent hash is derived from its height.
final class GovLedger {
    static let plx = Amount.unitsPerPLX
    let net: TestNetwork
    var state: LedgerState
    var nonces: [Int: UInt64] = [:]

    init(accounts: Int = 8, params: [String: UInt64] = [:]) throws {
        var p: [String: UInt64] = ["votingDelayBlocks": 2, "votingPeriodBlocks": 5, "timelockBlocks": 2, "gracePeriodBlocks": 4,
                                   "lateQuorumExtensionBlocks": 0, "quorumBps": 0]
        for (k, v) in params { p[k] = v }
        net = TestNetwork(accounts: accounts, balance: Amount(units: 10_000 * Self.plx), params: p)
        state = try net.genesis.initialState()
        try next()
    }

    var height: UInt64 { state.height }
    func address(_ i: Int) -> Address { net.keys[i].address }

    /// Starts the next block.
    @discardableResult
    func next() throws -> [Event] {
        let h = state.height + 1
        return try state.beginBlock(height: h, timeMillis: 1_000 + h, parentHash: Hash256.of(Array("block \(h)".utf8)))
    }

    /// Starts blocks until the height is `h`.
    func advance(to h: UInt64) throws {
        while state.height < h { try next() }
    }

    /// Applies a transaction from account `i` in the current block.
    @discardableResult
    func send(_ i: Int, _ body: Transaction.Body) throws -> [Event] {
        let n = nonces[i] ?? 0
        let events = try state.apply(net.tx(i, nonce: n, body))
        nonces[i] = n + 1
        return events
    }

    func stake(_ i: Int, _ units: UInt64) throws { try send(i, .stake(amount: Amount(units: units))) }

    /// Proposes `content` from account `i`; returns its id.
    @discardableResult
    func propose(_ i: Int, _ content: ProposalContent) throws -> Hash256 {
        try send(i, .propose(content))
        return content.id
    }

    func vote(_ i: Int, _ id: Hash256, _ choice: Choice) throws { try send(i, .vote(proposal: id, weights: choice.weights)) }

    func proposal(_ id: Hash256) -> Proposal { state.proposalView(id)! }
    func stateOf(_ id: Hash256) -> ProposalState { state.proposalState(id)! }

    /// The recorded state that a rejected transaction must leave untouched.
    func fingerprint() -> [UInt8] {
        var w = CanonicalWriter()
        for a in state.accounts.keys.sorted() { w.write(a); w.write(state.account(a)) }
        for id in state.proposals.keys.sorted() { w.write(state.proposals[id]!) }
        for a in state.voters.keys.sorted() { w.write(a); w.write(state.voters[a]!) }
        for c in state.communities.keys.sorted() { w.write(state.communities[c]!) }
        w.write(UInt32(state.ballots.values.reduce(0) { $0 + $1.count }))
        w.write(state.params)
        return w.bytes
    }

    static func text(_ title: String, _ communities: [String] = [Governance.root], _ actions: [ProposalAction] = []) -> ProposalContent {
        ProposalContent(communities: communities, title: title, actions: actions)
    }
}
