import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Random interleavings and seeded draws, checked against simple models.
@Suite struct GovernancePropertyTests {
    static let plx = Amount.unitsPerPLX

    /// Stake, unstake, delegation, proposals and votes in random order: the
    /// power each ballot carries equals the stake delegated to the voter at
    /// the end of the block before the snapshot (from a model kept beside
    /// the ledger), the delegated totals always equal the stake, and no
    /// proposal ever counts more than its total power.
    @Test(arguments: [1, 2, 3])
    func stakeDelegationAndVotesNeverCountPowerTwice(seed: Int) throws {
        let n = 8
        let l = try GovLedger(accounts: n, params: ["votingDelayBlocks": 1, "votingPeriodBlocks": 25, "maxPendingReleases": 1_000])
        var lot = LotStream(seed: Array("governance-property-\(seed)".utf8))
        struct Model { var stake = [UInt64](repeating: 0, count: 8); var delegate = Array(0..<8) }
        var model = Model()
        var atEndOf: [UInt64: Model] = [:]
        var proposals: [Hash256] = []
        var votesCast = 0
        for step in 0..<1_000 {
            switch lot.uniform(10) {
            case 0, 1:
                let i = Int(lot.uniform(UInt64(n)))
                let amount = 1 + lot.uniform(50 * Self.plx)
                try l.stake(i, amount)
                model.stake[i] += amount
            case 2:
                let i = Int(lot.uniform(UInt64(n)))
                guard model.stake[i] > 0 else { continue }
                let amount = 1 + lot.uniform(model.stake[i])
                try l.send(i, .unstake(amount: Amount(units: amount)))
                model.stake[i] -= amount
            case 3:
                let i = Int(lot.uniform(UInt64(n))), j = Int(lot.uniform(UInt64(n)))
                if model.delegate[i] == j {
                    #expect(throws: PlexusError.self) { try l.send(i, .delegate(to: l.address(j))) }
                } else {
                    try l.send(i, .delegate(to: l.address(j)))
                    model.delegate[i] = j
                }
            case 4:
                let i = Int(lot.uniform(UInt64(n)))
                proposals.append(try l.propose(i, GovLedger.text("proposal \(step)")))
            case 5, 6, 7:
                guard !proposals.isEmpty else { continue }
                let id = proposals[Int(lot.uniform(UInt64(proposals.count)))]
                let i = Int(lot.uniform(UInt64(n)))
                let choice = Choice(rawValue: Int(lot.uniform(3)))!
                let p = l.state.proposals[id]!
                let snapshotModel = atEndOf[p.snapshot - 1] ?? Model()
                let expected = (0..<n).filter { snapshotModel.delegate[$0] == i }.reduce(UInt64(0)) { $0 + snapshotModel.stake[$1] }
                let open = l.stateOf(id) == .active
                let voted = l.state.ballots[id]?[l.address(i)] != nil
                if open && !voted && expected > 0 {
                    try l.vote(i, id, choice)
                    votesCast += 1
                    #expect(l.state.ballots[id]![l.address(i)]!.power == [expected])
                } else {
                    let before = l.fingerprint()
                    #expect(throws: PlexusError.self) { try l.vote(i, id, choice) }
                    #expect(l.fingerprint() == before)
                }
            default:
                atEndOf[l.height] = model
                try l.next()
            }
            // Invariants after every step.
            let staked = (0..<n).reduce(UInt64(0)) { $0 + l.state.account(l.address($1)).staked.units }
            let delegated = (0..<n).reduce(UInt64(0)) { $0 + (l.state.voters[l.address($1)]?.votes.latest ?? 0) }
            #expect(staked == model.stake.reduce(0, +))
            #expect(delegated == staked)
            #expect(l.state.govTotals.stake.latest == staked)
            for (a, v) in l.state.voters {
                let i = (0..<n).first { l.address($0) == a }!
                let mine = (0..<n).filter { model.delegate[$0] == i }.reduce(UInt64(0)) { $0 + model.stake[$1] }
                #expect(v.votes.latest == mine)
            }
        }
        for id in proposals {
            let p = l.proposal(id)
            let ballots = l.state.ballots[id] ?? [:]
            let counted = ballots.values.reduce(UInt64(0)) { $0 + $1.power[0] }
            let tally = p.votes[0].tally
            #expect(tally.forVotes + tally.againstVotes + tally.abstainVotes == counted)
            if let total = p.votes[0].totalPower { #expect(counted <= total) }
        }
        #expect(votesCast > 40, "only \(votesCast) votes were cast")
    }

    /// 10,000 seeded assembly draws: every member's selection frequency is
    /// within 4.5 standard deviations of seats / size for its community, and
    /// every community gets its floor in every draw.
    @Test func sortitionFrequenciesMatchTheirProbabilities() {
        let sizes = [40, 25, 10, 3, 1]
        let seats = Apportionment.seats(sizes: sizes, total: 12, floor: 2)
        #expect(seats == [4, 3, 2, 2, 1])  // floors (2, 2, 2, 2, 1) first, then D'Hondt for the other 3
        #expect(zip(seats, sizes).allSatisfy { $0 >= min(2, $1) && $0 <= $1 })
        let rosters = sizes.enumerated().map { c, size in (0..<size).map { c * 1_000 + $0 } }
        var counts: [Int: Int] = [:]
        let draws = 10_000
        for d in 0..<draws {
            let hash = Hash256.of(Array("draw \(d)".utf8))
            for (c, roster) in rosters.enumerated() {
                var lot = LotStream(seed: LotStream.seed(blockHash: hash, purpose: "assembly:c\(c)", height: UInt64(d)))
                let chosen = lot.draw(seats[c], from: roster)
                #expect(Set(chosen).count == seats[c])
                #expect(chosen.count >= min(2, roster.count))
                for m in chosen { counts[m, default: 0] += 1 }
            }
        }
        for (c, roster) in rosters.enumerated() {
            let p = Double(seats[c]) / Double(roster.count)
            let sd = (Double(draws) * p * (1 - p)).squareRoot()
            for m in roster {
                let observed = Double(counts[m] ?? 0)
                #expect(abs(observed - Double(draws) * p) <= max(4.5 * sd, 0.5), "member \(m): \(observed) vs \(Double(draws) * p)")
            }
        }
    }

    @Test func apportionmentIsProportionalAboveTheFloors() {
        #expect(Apportionment.seats(sizes: [100, 50, 50], total: 8, floor: 1) == [4, 2, 2])
        #expect(Apportionment.seats(sizes: [90, 9, 1], total: 10, floor: 1) == [8, 1, 1])
        #expect(Apportionment.seats(sizes: [3, 2], total: 10, floor: 1) == [3, 2])  // never more than the members
        #expect(Apportionment.seats(sizes: [5, 5, 5], total: 2, floor: 1) == [1, 1, 1])  // floors win over the total
    }

    @Test func lotStreamIsUniform() {
        var lot = LotStream(seed: [9])
        var buckets = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { buckets[Int(lot.uniform(7))] += 1 }
        #expect(buckets.allSatisfy { abs($0 - 10_000) < 500 })
    }
}

/// Histories stay short: what no open proposal can look up is forgotten.
@Suite struct CheckpointPruningTests {
    @Test func historiesKeepOnlyWhatOpenSnapshotsNeed() throws {
        let l = try GovLedger(params: ["votingDelayBlocks": 2, "votingPeriodBlocks": 30])
        // A node operator's reputation (or anyone's stake) changing every block.
        for _ in 0..<200 {
            try l.stake(0, 1)
            try l.next()
        }
        #expect(l.state.voters[l.address(0)]!.stake.heights.count <= 2)
        // An open proposal keeps the entries its snapshot needs.
        let id = try l.propose(1, GovLedger.text("keep"))
        let snapshot = l.proposal(id).snapshot
        for _ in 0..<20 {
            try l.stake(0, 1)
            try l.next()
        }
        let stake = l.state.voters[l.address(0)]!.stake
        #expect(stake.heights.first! < snapshot)
        // One unit staked in each of blocks 1...202 counts; the proposal was made at 201, snapshot 203.
        #expect(l.proposal(id).createdHeight == 201 && snapshot == 203)
        #expect(stake.value(before: snapshot) == 202)
        try l.vote(0, id, .for)
        #expect(l.state.ballots[id]![l.address(0)]!.power == [202])
        // After voting closes, the history shrinks again and the proposal keeps its totals.
        try l.advance(to: l.proposal(id).deadline + 2)
        try l.stake(0, 1)
        #expect(l.state.voters[l.address(0)]!.stake.heights.count <= 2)
        #expect(l.state.proposals[id]!.votes[0].totalPower != nil)
    }
}
