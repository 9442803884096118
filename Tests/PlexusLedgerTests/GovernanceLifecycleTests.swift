import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// The proposal lifecycle at each of its boundaries (OpenZeppelin Governor's
/// semantics): delay 2 and period 5 blocks unless a test says otherwise.
@Suite struct GovernanceLifecycleTests {
    static let plx = Amount.unitsPerPLX

    /// Accounts 0-3 stake 100 PLX each in block 1.
    func ledger(_ params: [String: UInt64] = [:]) throws -> GovLedger {
        let l = try GovLedger(params: params)
        for i in 0..<4 { try l.stake(i, 100 * Self.plx) }
        try l.next()
        return l
    }

    @Test func snapshotHeightAndPendingToActive() throws {
        let l = try ledger()
        let id = try l.propose(0, GovLedger.text("signal"))
        let p = l.proposal(id)
        #expect(p.snapshot == l.height + 2)
        #expect(p.deadline == p.snapshot + 5)
        try l.advance(to: p.snapshot)
        #expect(l.stateOf(id) == .pending)
        #expect(throws: PlexusError.self) { try l.vote(1, id, .for) }
        try l.next()
        #expect(l.stateOf(id) == .active)
        try l.vote(1, id, .for)
        #expect(l.proposal(id).votes[0].tally.forVotes == 100 * Self.plx)
    }

    @Test func tokensAcquiredAtOrAfterTheSnapshotCarryNoWeight() throws {
        let l = try ledger()
        let id = try l.propose(0, GovLedger.text("snapshot"))
        let snapshot = l.proposal(id).snapshot
        try l.advance(to: snapshot - 1)
        try l.stake(5, 50 * Self.plx)  // before the snapshot: counts
        try l.next()
        #expect(l.height == snapshot)
        try l.stake(4, 70 * Self.plx)  // in the snapshot block: does not count
        try l.stake(5, 30 * Self.plx)  // neither does this top-up
        try l.send(1, .unstake(amount: Amount(units: 100 * Self.plx)))  // unstaking after the snapshot keeps the vote
        try l.next()
        let before = l.fingerprint()
        #expect(throws: PlexusError.self) { try l.vote(4, id, .for) }
        #expect(l.fingerprint() == before)
        try l.vote(5, id, .for)
        try l.vote(1, id, .against)
        let v = l.proposal(id).votes[0]
        #expect(v.tally.forVotes == 50 * Self.plx)
        #expect(v.tally.againstVotes == 100 * Self.plx)
        #expect(v.totalPower == 450 * Self.plx)  // 4 × 100 + 50, as before the snapshot
    }

    @Test func deadlineIsInclusive() throws {
        let l = try ledger()
        let id = try l.propose(0, GovLedger.text("deadline"))
        let deadline = l.proposal(id).deadline
        try l.advance(to: deadline)
        #expect(l.stateOf(id) == .active)
        try l.vote(1, id, .for)
        try l.next()
        #expect(l.stateOf(id) == .succeeded)
        #expect(throws: PlexusError.self) { try l.vote(2, id, .against) }
    }

    @Test func aTieFailsAndOneMoreForPasses() throws {
        let l = try ledger()
        let tie = try l.propose(0, GovLedger.text("tie"))
        let win = try l.propose(0, GovLedger.text("tie with abstentions"))
        try l.advance(to: l.proposal(tie).snapshot + 1)
        try l.vote(0, tie, .for)
        try l.vote(1, tie, .against)
        try l.stake(6, 1)  // after the snapshot: no weight in either proposal
        try l.vote(0, win, .for)
        try l.vote(1, win, .against)
        try l.vote(2, win, .abstain)
        try l.advance(to: l.proposal(tie).deadline + 1)
        #expect(l.stateOf(tie) == .defeated)
        #expect(l.stateOf(win) == .defeated)  // 100 for, 100 against, 100 abstain: still a tie
        let l2 = try ledger()
        try l2.stake(5, 1)
        try l2.next()
        let one = try l2.propose(0, GovLedger.text("one more"))
        try l2.advance(to: l2.proposal(one).snapshot + 1)
        try l2.vote(0, one, .against)
        try l2.vote(1, one, .for)
        try l2.vote(5, one, .for)  // 100 PLX + 1 unit for, 100 PLX against
        try l2.advance(to: l2.proposal(one).deadline + 1)
        #expect(l2.stateOf(one) == .succeeded)
    }

    @Test func quorumExactlyReachedPassesOneUnitShortFails() throws {
        // Total power 400 PLX; quorum 25% = 100 PLX counted over For + Abstain.
        let l = try ledger(["quorumBps": 2_500])
        try l.stake(5, 1)
        try l.next()
        // Now the total is 400 PLX + 1 unit: quorum ⌊(400e9 + 1) × 0.25⌋ = 100e9.
        let exact = try l.propose(0, GovLedger.text("exact"))
        let short = try l.propose(0, GovLedger.text("short"))
        let abstain = try l.propose(0, GovLedger.text("abstain counts"))
        try l.advance(to: l.proposal(exact).snapshot + 1)
        try l.vote(1, exact, .for)  // exactly 100 PLX
        try l.send(2, .unstake(amount: Amount(units: 1)))
        try l.vote(5, short, .for)  // 1 unit: far below
        try l.vote(5, abstain, .for)
        try l.vote(3, abstain, .abstain)  // 1 unit for + 100 PLX abstain
        try l.advance(to: l.proposal(exact).deadline + 1)
        let v = l.proposal(exact).votes[0]
        #expect(CommunityVote.quorum(total: v.totalPower!, bps: 2_500) == 100 * Self.plx)
        #expect(l.stateOf(exact) == .succeeded)
        #expect(l.stateOf(short) == .defeated)
        #expect(l.stateOf(abstain) == .succeeded)

        // One unit short of quorum: a voter with 100 PLX − 1 unit.
        let l2 = try GovLedger(params: ["quorumBps": 2_500])
        for i in 0..<3 { try l2.stake(i, 100 * Self.plx) }
        try l2.stake(3, 100 * Self.plx - 1)
        try l2.stake(4, 1)
        try l2.next()
        let p = try l2.propose(0, GovLedger.text("one short"))
        try l2.advance(to: l2.proposal(p).snapshot + 1)
        try l2.vote(3, p, .for)  // 100 PLX − 1 < quorum 100 PLX
        try l2.advance(to: l2.proposal(p).deadline + 1)
        #expect(l2.stateOf(p) == .defeated)
    }

    @Test func proposalThresholdExactlyMet() throws {
        let l = try GovLedger(params: ["proposalThreshold": 100 * Self.plx])
        try l.stake(0, 100 * Self.plx)
        try l.stake(1, 100 * Self.plx - 1)
        // Power is read at the previous block: nobody may propose in the block they staked.
        let before = l.fingerprint()
        #expect(throws: PlexusError.self) { try l.propose(0, GovLedger.text("too early")) }
        #expect(l.fingerprint() == before)
        try l.next()
        try l.propose(0, GovLedger.text("exactly at the threshold"))
        #expect(throws: PlexusError.self) { try l.propose(1, GovLedger.text("one unit short")) }
    }

    @Test func queueTimelockExecuteAndTheGracePeriodEnd() throws {
        let l = try ledger()  // timelock 2, grace 4
        let a = try l.propose(0, GovLedger.text("a", [Governance.root], [.setParam(name: "protocolFeeBps", value: 250)]))
        let b = try l.propose(0, GovLedger.text("b", [Governance.root], [.setParam(name: "minFee", value: 2_000)]))
        try l.advance(to: l.proposal(a).snapshot + 1)
        try l.vote(0, a, .for)
        try l.vote(0, b, .for)
        #expect(throws: PlexusError.self) { try l.send(1, .queue(proposal: a)) }  // still active
        try l.advance(to: l.proposal(a).deadline + 1)
        try l.send(1, .queue(proposal: a))
        try l.send(1, .queue(proposal: b))
        #expect(throws: PlexusError.self) { try l.send(1, .queue(proposal: a)) }  // already queued
        let eta = l.proposal(a).eta!
        #expect(eta == l.height + 2)
        #expect(l.stateOf(a) == .queued)
        #expect(throws: PlexusError.self) { try l.send(2, .execute(proposal: a)) }  // timelocked
        try l.advance(to: eta + 4 - 1)  // last block of the grace period
        #expect(l.stateOf(a) == .queued)
        let feeBefore = l.state.params[.protocolFeeBps]
        try l.send(2, .execute(proposal: a))  // anyone may execute
        #expect(l.state.params[.protocolFeeBps] == 250)
        // The change is logged, so the parameters in force at any earlier height can be read back.
        let change = try #require(l.state.paramChanges.last)
        #expect(l.state.paramChanges.count == 1 && change.name == "protocolFeeBps" && change.old == feeBefore && change.new == 250)
        #expect(l.state.params.at(change.height - 1, undoing: l.state.paramChanges)[.protocolFeeBps] == feeBefore)
        #expect(l.state.params.at(change.height, undoing: l.state.paramChanges)[.protocolFeeBps] == 250)
        // The log is a state record: it survives a reload.
        var reloaded = try LedgerState(chainId: "x", params: .defaults, accounts: [:])
        try reloaded.load(records: [(RecordKey.paramLog.bytes, try #require(l.state.recordBytes(.paramLog)))])
        #expect(reloaded.paramChanges == l.state.paramChanges)
        #expect(l.stateOf(a) == .executed)
        #expect(throws: PlexusError.self) { try l.send(2, .execute(proposal: a)) }
        try l.next()  // eta + grace
        #expect(l.stateOf(b) == .expired)
        #expect(throws: PlexusError.self) { try l.send(2, .execute(proposal: b)) }
        #expect(l.state.params[.minFee] == 1_000)
    }

    @Test func cancelByTheProposerWhilePendingOnly() throws {
        let l = try ledger()
        let a = try l.propose(0, GovLedger.text("a"))
        let b = try l.propose(0, GovLedger.text("b"))
        #expect(throws: PlexusError.self) { try l.send(1, .cancel(proposal: a)) }  // not the proposer
        try l.send(0, .cancel(proposal: a))
        #expect(l.stateOf(a) == .canceled)
        try l.advance(to: l.proposal(b).snapshot + 1)
        #expect(throws: PlexusError.self) { try l.vote(1, a, .for) }  // canceled
        let before = l.fingerprint()
        #expect(throws: PlexusError.self) { try l.send(0, .cancel(proposal: b)) }  // active: refused
        #expect(l.fingerprint() == before)
        #expect(l.stateOf(b) == .active)
    }

    @Test func doubleVotesAndInvalidBallotsChangeNothing() throws {
        let l = try ledger()
        let id = try l.propose(0, GovLedger.text("ballots"))
        try l.advance(to: l.proposal(id).snapshot + 1)
        try l.vote(1, id, .for)
        let before = l.fingerprint()
        for weights: [UInt32] in [[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1], [0, 1, 0, 0], [0, Ballots.maxWeight + 1, 0]] {
            let voter = weights == [1, 0, 0] ? 1 : 2
            #expect(throws: PlexusError.self) { try l.send(voter, .vote(proposal: id, weights: weights)) }
        }
        #expect(throws: PlexusError.self) { try l.send(2, .vote(proposal: Hash256.of([1]), weights: Choice.for.weights)) }
        #expect(l.fingerprint() == before)
    }

    @Test func duplicateProposalsAreRejected() throws {
        let l = try ledger()
        try l.propose(0, GovLedger.text("same"))
        #expect(throws: PlexusError.self) { try l.propose(1, GovLedger.text("same")) }
    }

    @Test func quorumNumeratorChangeDoesNotTouchOpenProposals() throws {
        let l = try ledger(["quorumBps": 1_000, "votingPeriodBlocks": 10])
        let change = try l.propose(0, GovLedger.text("raise quorum", [Governance.root], [.setParam(name: "quorumBps", value: 9_000)]))
        try l.advance(to: l.proposal(change).snapshot + 1)
        try l.vote(0, change, .for)
        try l.vote(1, change, .for)
        let open = try l.propose(2, GovLedger.text("open under 10%"))
        try l.advance(to: l.proposal(change).deadline + 1)
        try l.send(0, .queue(proposal: change))
        try l.advance(to: l.proposal(change).eta!)
        try l.send(0, .execute(proposal: change))
        #expect(l.state.params[.quorumBps] == 9_000)
        try l.advance(to: l.proposal(open).snapshot + 1)
        try l.vote(3, open, .for)  // 25% of the power: enough under 10%, not under 90%
        try l.advance(to: l.proposal(open).deadline + 1)
        #expect(l.proposal(open).votes[0].quorumBps == 1_000)
        #expect(l.stateOf(open) == .succeeded)
        let later = try l.propose(2, GovLedger.text("under 90%"))
        #expect(l.proposal(later).votes[0].quorumBps == 9_000)
    }

    @Test func lateQuorumExtendsTheDeadlineOnce() throws {
        let l = try ledger(["quorumBps": 5_000, "lateQuorumExtensionBlocks": 4])
        let id = try l.propose(0, GovLedger.text("late"))
        let deadline = l.proposal(id).deadline
        try l.advance(to: deadline - 1)
        try l.vote(0, id, .for)  // 25%: no quorum yet
        #expect(l.proposal(id).deadline == deadline)
        try l.vote(1, id, .for)  // 50%: quorum reached with one block left
        #expect(l.proposal(id).deadline == deadline - 1 + 4)
        #expect(l.proposal(id).extended)
        try l.advance(to: deadline + 2)
        try l.vote(2, id, .against)
        try l.vote(3, id, .abstain)  // more votes do not extend again
        #expect(l.proposal(id).deadline == deadline + 3)
        try l.advance(to: deadline + 4)
        #expect(l.stateOf(id) == .succeeded)
    }

    @Test func aFirstVoteThatReachesQuorumLateAlsoExtends() throws {
        let l = try ledger(["quorumBps": 2_000, "lateQuorumExtensionBlocks": 3])
        let id = try l.propose(0, GovLedger.text("first vote decides"))
        let deadline = l.proposal(id).deadline
        try l.advance(to: deadline)
        try l.vote(0, id, .for)  // 25% ≥ 20%: quorum on the first vote, in the last block
        #expect(l.proposal(id).extended)
        #expect(l.proposal(id).deadline == deadline + 3)
        try l.next()
        #expect(l.stateOf(id) == .active)
        try l.vote(1, id, .against)
        try l.vote(2, id, .against)
        try l.advance(to: deadline + 4)
        #expect(l.stateOf(id) == .defeated)
    }

    @Test func outOfBoundsValuesCanBeNeitherProposedNorExecuted() throws {
        let l = try ledger()
        let before = l.fingerprint()
        for (name, value): (String, UInt64) in [("protocolFeeBps", 2_001), ("quorumBps", 10_001), ("votingPeriodBlocks", 0), ("noSuchParam", 1)] {
            #expect(throws: PlexusError.self) { try l.propose(0, GovLedger.text("bad \(name)", [Governance.root], [.setParam(name: name, value: value)])) }
        }
        #expect(l.fingerprint() == before)
        // A proposal that slipped past the proposal-time check (written
        // directly into state) is still refused when executed.
        let good = try l.propose(0, GovLedger.text("fee", [Governance.root], [.setParam(name: "protocolFeeBps", value: 100)]))
        var p = l.state.proposals[good]!
        p.content.actions = [.setParam(name: "protocolFeeBps", value: 9_999)]
        l.state.proposals[good] = p
        try l.advance(to: p.snapshot + 1)
        try l.vote(0, good, .for)
        try l.advance(to: p.deadline + 1)
        try l.send(0, .queue(proposal: good))
        try l.advance(to: l.proposal(good).eta!)
        let queued = l.fingerprint()
        #expect(throws: PlexusError.self) { try l.send(0, .execute(proposal: good)) }
        #expect(l.fingerprint() == queued)
        #expect(l.state.params[.protocolFeeBps] == 500)
    }

    @Test func actionsMustNameEveryCommunityTheyTouch() throws {
        let l = try ledger()
        try l.send(0, .createCommunity(id: "guild", scheme: .member, open: true))
        #expect(throws: PlexusError.self) {
            try l.propose(0, GovLedger.text("fee from guild", ["guild"], [.setParam(name: "protocolFeeBps", value: 100)]))
        }
        #expect(throws: PlexusError.self) {
            try l.propose(0, GovLedger.text("guild quorum from root", [Governance.root], [.setCommunityParam(community: "guild", name: "quorumBps", value: 10)]))
        }
        try l.propose(0, GovLedger.text("guild quorum", ["guild"], [.setCommunityParam(community: "guild", name: "quorumBps", value: 10)]))
    }

    @Test func treasurySpendIsPaidAtomicallyAndSupplyIsConserved() throws {
        let l = try ledger()
        let treasury = l.state.treasury
        let spend = try l.propose(0, GovLedger.text("grant", [Governance.root],
                                                    [.treasurySpend(to: l.address(7), amount: Amount(units: treasury.units / 2))]))
        let tooMuch = try l.propose(0, GovLedger.text("too much", [Governance.root],
                                                      [.treasurySpend(to: l.address(7), amount: Amount(units: 1_000 * Self.plx)),
                                                       .setParam(name: "minFee", value: 5)]))
        try l.advance(to: l.proposal(spend).snapshot + 1)
        for id in [spend, tooMuch] { try l.vote(0, id, .for) }
        try l.advance(to: l.proposal(spend).deadline + 1)
        for id in [spend, tooMuch] { try l.send(1, .queue(proposal: id)) }
        try l.advance(to: l.proposal(spend).eta!)
        let balance = l.state.account(l.address(7)).balance
        try l.send(1, .execute(proposal: spend))
        #expect(l.state.account(l.address(7)).balance.units == balance.units + treasury.units / 2)
        #expect(throws: PlexusError.self) { try l.send(1, .execute(proposal: tooMuch)) }
        #expect(l.state.params[.minFee] == 1_000)  // nothing of the failed execution applied
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func recordsSurviveAReloadWithTheSameStateRoot() throws {
        let l = try ledger()
        try l.send(4, .createCommunity(id: "club", scheme: .quadratic, open: false))
        try l.send(5, .joinCommunity(id: "club"))
        try l.send(1, .delegate(to: l.address(2)))
        let id = try l.propose(0, GovLedger.text("persist", [Governance.root, "club"]))
        try l.advance(to: l.proposal(id).snapshot + 1)
        try l.vote(2, id, .for)
        let changes = l.state.commit()
        _ = changes
        // Everything as a fresh replica reads it back from storage.
        var all: [(key: [UInt8], value: [UInt8])] = []
        var keys = Set<RecordKey>()
        for a in l.state.voters.keys { keys.insert(.voter(a)) }
        for c in l.state.communities.keys { keys.insert(.community(c)) }
        for (c, m) in l.state.memberships { for a in m.keys { keys.insert(.member(c, a)) } }
        for p in l.state.proposals.keys { keys.insert(.proposal(p)) }
        for (p, b) in l.state.ballots { for a in b.keys { keys.insert(.ballot(p, a)) } }
        keys.insert(.govTotals)
        for k in keys { if let v = l.state.recordBytes(k) { all.append((k.bytes, v)) } }
        var copy = LedgerState(chainId: l.state.chainId, totalSupply: l.state.totalSupply, params: l.state.params, height: l.state.height,
                               timeMillis: l.state.timeMillis, accounts: l.state.accounts)
        try copy.load(records: all)
        var original = l.state
        #expect(copy.commit().root == original.commit().root)
        #expect(copy.proposalView(id) == original.proposalView(id))
        #expect(copy.memberships["club"]?[l.address(5)]?.applied == true)
    }
}

/// A dataset delisted by governance (a licence violation): no access is sold until it is relisted.
@Suite struct DatasetGovernanceTests {
    @Test func aDelistedDatasetSellsNothingUntilRelisted() throws {
        let l = try GovLedger()
        try l.stake(0, 1_000 * GovLedger.plx)
        try l.next()
        let m = DatasetManifest(name: "scraped", root: Hash256.of([1]), size: 2_000, chunkSize: 1_024, chunks: 2, license: "custom",
                                price: Amount(units: 10), contributors: [Contributor(account: l.address(2), weight: 1)], totalWeight: 1)
        try l.send(2, .registerDataset(m))
        let id = DataMarket.datasetId(owner: l.address(2), name: "scraped", version: 1)
        #expect(throws: PlexusError.self) { try l.propose(0, GovLedger.text("no such dataset", [Governance.root], [.delistDataset(Hash256.of([9]))])) }
        #expect(throws: PlexusError.self) { try l.propose(0, GovLedger.text("not delisted", [Governance.root], [.relistDataset(id)])) }
        func pass(_ action: ProposalAction, _ title: String) throws {
            let p = try l.propose(0, GovLedger.text(title, [Governance.root], [action]))
            try l.advance(to: l.proposal(p).snapshot + 1)
            try l.vote(0, p, .for)
            try l.advance(to: l.proposal(p).deadline + 1)
            try l.send(1, .queue(proposal: p))
            try l.advance(to: l.proposal(p).eta!)
            try l.send(1, .execute(proposal: p))
        }
        try pass(.delistDataset(id), "delist: the licence forbids resale")
        #expect(l.state.datasets[id]?.delisted == true)
        #expect(throws: PlexusError.self) { try l.send(3, .buyData(dataset: id, server: l.address(4))) }
        try pass(.relistDataset(id), "relist: the licence was cleared")
        #expect(l.state.datasets[id]?.delisted == false)
        try l.send(3, .buyData(dataset: id, server: l.address(4)))
        #expect(l.state.grants.count == 1)
    }
}
