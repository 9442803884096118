import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Voting schemes, communities, councils, the federation and the veto.
@Suite struct GovernanceSchemeTests {
    static let plx = Amount.unitsPerPLX

    @Test func quadraticMatchesSnapshotsWorkedExample() {
        // A: 100 all on choice 1; B: 25 all on choice 2; C: 100 split between choices 2 and 3.
        var t = Tally(quadratic: true)
        t.add(power: 100 * Self.plx, weights: [1, 0, 0])
        t.add(power: 25 * Self.plx, weights: [0, 1, 0])
        t.add(power: 100 * Self.plx, weights: [0, 1, 1])
        let s = t.scores.map { Double($0) / Double(Self.plx) }
        #expect(abs(s[0] - 76.09) < 0.01)
        #expect(abs(s[1] - 110.87) < 0.01)
        #expect(abs(s[2] - 38.04) < 0.01)
        #expect(t.scores.reduce(0, +) <= 225 * Self.plx)
        #expect(t.scores.reduce(0, +) >= 225 * Self.plx - 3)
    }

    @Test func integerSquareRootIsExact() {
        var lot = LotStream(seed: [1, 2, 3])
        for _ in 0..<2_000 {
            let n = UInt128(lot.next()) << (lot.next() % 60) | UInt128(lot.next())
            let r = Tally.isqrt(n)
            #expect(r * r <= n && (r + 1) * (r + 1) > n)
        }
        for n: UInt128 in [0, 1, 2, 3, 4, 15, 16, 17, UInt128(UInt64.max), UInt128(UInt64.max) * UInt128(UInt64.max)] {
            let r = Tally.isqrt(n)
            let next = (r + 1).multipliedReportingOverflow(by: r + 1)
            #expect(r * r <= n && (next.overflow || next.partialValue > n))
        }
    }

    @Test func quadraticCommunityCountsMembersOnly() throws {
        let l = try GovLedger()
        try l.send(0, .createCommunity(id: "qv", scheme: .quadratic, open: true))
        try l.send(1, .joinCommunity(id: "qv"))
        try l.stake(0, 100 * Self.plx)
        try l.stake(1, 25 * Self.plx)
        try l.stake(2, 400 * Self.plx)  // a whale outside the community
        try l.next()
        let id = try l.propose(0, GovLedger.text("qv", ["qv"]))
        try l.advance(to: l.proposal(id).snapshot + 1)
        #expect(throws: PlexusError.self) { try l.vote(2, id, .against) }  // not a member: no power
        try l.send(0, .vote(proposal: id, weights: [0, 1, 0]))
        try l.send(1, .vote(proposal: id, weights: [1, 0, 0]))
        let v = l.proposal(id).votes[0]
        #expect(v.totalPower == 125 * Self.plx)
        // √100 = 10 for, √25 = 5 against: scores 100 : 25 rescaled to 125
        // (to within the fixed-point roots' rounding, a few base units).
        #expect(v.tally.forVotes.distance(to: 100 * Self.plx).magnitude <= 3)
        #expect(v.tally.againstVotes.distance(to: 25 * Self.plx).magnitude <= 3)
    }

    @Test func oneMemberOneVoteIgnoresTokens() throws {
        let l = try GovLedger()
        try l.send(0, .createCommunity(id: "coop", scheme: .member, open: true))
        for i in 1...3 { try l.send(i, .joinCommunity(id: "coop")) }
        try l.stake(0, 1_000 * Self.plx)
        try l.next()
        let id = try l.propose(1, GovLedger.text("coop", ["coop"]))
        try l.advance(to: l.proposal(id).snapshot + 1)
        try l.vote(0, id, .for)
        try l.vote(1, id, .against)
        try l.vote(2, id, .against)
        #expect(throws: PlexusError.self) { try l.send(3, .vote(proposal: id, weights: [0, 1, 1])) }  // no splitting
        let v = l.proposal(id).votes[0]
        #expect(v.totalPower == 4)
        #expect(v.tally.forVotes == 1 && v.tally.againstVotes == 2)
    }

    @Test func reputationIsEarnedNeverTransferred() throws {
        let l = try GovLedger()
        try l.send(0, .createCommunity(id: "guild", scheme: .reputation, open: true))
        try l.send(1, .joinCommunity(id: "guild"))
        try l.stake(0, 10 * Self.plx)
        try l.next()
        let grant = try l.propose(0, GovLedger.text("award", [Governance.root], [.grantReputation(account: l.address(1), points: 30)]))
        try l.advance(to: l.proposal(grant).snapshot + 1)
        try l.vote(0, grant, .for)
        try l.advance(to: l.proposal(grant).deadline + 1)
        try l.send(0, .queue(proposal: grant))
        try l.advance(to: l.proposal(grant).eta!)
        try l.send(0, .execute(proposal: grant))
        #expect(l.state.voters[l.address(1)]?.reputation.latest == 30)
        // Delegation moves stake-weighted power only; tokens moved carry no points.
        try l.send(1, .delegate(to: l.address(0)))
        try l.send(1, .transfer(to: l.address(0), amount: Amount(units: 5 * Self.plx)))
        try l.next()
        let id = try l.propose(1, GovLedger.text("guild", ["guild"]))
        try l.advance(to: l.proposal(id).snapshot + 1)
        #expect(throws: PlexusError.self) { try l.vote(0, id, .for) }  // no points
        try l.vote(1, id, .for)
        #expect(l.proposal(id).votes[0].tally.forVotes == 30)
        #expect(l.proposal(id).votes[0].totalPower == 30)
    }

    @Test func delegationMovesTokenPowerWithoutCountingItTwice() throws {
        let l = try GovLedger()
        try l.stake(0, 100 * Self.plx)
        try l.stake(1, 50 * Self.plx)
        try l.send(1, .delegate(to: l.address(0)))
        try l.next()
        let id = try l.propose(0, GovLedger.text("delegated"))
        try l.advance(to: l.proposal(id).snapshot + 1)
        #expect(throws: PlexusError.self) { try l.vote(1, id, .against) }  // delegated away
        try l.vote(0, id, .for)
        #expect(l.proposal(id).votes[0].tally.forVotes == 150 * Self.plx)
        #expect(l.proposal(id).votes[0].totalPower == 150 * Self.plx)
        // Taking it back after the snapshot changes nothing for this proposal.
        try l.send(1, .delegate(to: l.address(1)))
        #expect(l.state.voters[l.address(0)]?.votes.latest == 100 * Self.plx)
        #expect(l.state.voters[l.address(1)]?.votes.latest == 50 * Self.plx)
    }

    @Test func electedCouncilIsTheTopApprovedEachEpoch() throws {
        let l = try GovLedger(params: ["councilSize": 2, "councilApprovals": 2, "councilEpochBlocks": 10])
        try l.send(0, .createCommunity(id: "dpos", scheme: .council, open: true))
        for i in 1...5 { try l.send(i, .joinCommunity(id: "dpos")) }
        try l.stake(0, 300 * Self.plx)
        try l.stake(1, 200 * Self.plx)
        try l.stake(2, 150 * Self.plx)
        #expect(throws: PlexusError.self) { try l.send(0, .approveCandidates(community: "dpos", candidates: [l.address(3), l.address(4), l.address(5)])) }
        #expect(throws: PlexusError.self) { try l.send(0, .approveCandidates(community: "dpos", candidates: [l.address(6)])) }  // not a member
        try l.send(0, .approveCandidates(community: "dpos", candidates: [l.address(3), l.address(4)]))
        try l.send(1, .approveCandidates(community: "dpos", candidates: [l.address(5)]))
        try l.send(2, .approveCandidates(community: "dpos", candidates: [l.address(5), l.address(4)]))
        // Scores: 3 → 300, 4 → 450, 5 → 350. Council: 4 and 5.
        try l.advance(to: 10)
        let council = l.state.communities["dpos"]!.councils.last!
        #expect(council.fromHeight == 10)
        #expect(Set(council.members) == [l.address(4), l.address(5)])
        try l.next()
        let id = try l.propose(4, GovLedger.text("council", ["dpos"]))
        try l.advance(to: l.proposal(id).snapshot + 1)
        #expect(throws: PlexusError.self) { try l.vote(0, id, .for) }  // the biggest staker is not on the council
        try l.vote(4, id, .for)
        try l.vote(5, id, .against)
        #expect(l.proposal(id).votes[0].totalPower == 2)
    }

    @Test func sortitionCouncilIsDrawnFromALaterBlockHash() throws {
        let l = try GovLedger(accounts: 12, params: ["councilSize": 3, "councilEpochBlocks": 20, "sortitionDelayBlocks": 2])
        try l.send(0, .createCommunity(id: "lot", scheme: .sortition, open: true))
        for i in 1..<12 { try l.send(i, .joinCommunity(id: "lot")) }
        let announced = try l.next()  // the next block announces the first draw
        #expect(announced.contains { if case let .governance(a, s, _) = $0 { a == "draw_announced" && s == "lot" } else { false } })
        let due = l.state.communities["lot"]!.pendingDraw!
        #expect(due == l.height + 2)
        try l.advance(to: due)
        let term = l.state.communities["lot"]!.councils.last!
        #expect(term.members.count == 3)
        #expect(term.fromHeight == due)
        // The draw is the lot stream seeded by the hash of the block before it.
        var lot = LotStream(seed: LotStream.seed(blockHash: Hash256.of(Array("block \(due)".utf8)), purpose: "council:lot", height: due))
        #expect(lot.draw(3, from: l.state.members(of: "lot")).sorted() == term.members)
        try l.next()
        let member = (0..<12).first { term.members.contains(l.address($0)) }!
        let outsider = (0..<12).first { !term.members.contains(l.address($0)) }!
        let id = try l.propose(member, GovLedger.text("lot", ["lot"]))
        try l.advance(to: l.proposal(id).snapshot + 1)
        #expect(throws: PlexusError.self) { try l.vote(outsider, id, .for) }
        try l.vote(member, id, .for)
        #expect(l.proposal(id).votes[0].totalPower == 3)
    }

    @Test func distributedVetoNeedsEveryNamedCommunity() throws {
        let l = try GovLedger()
        try l.stake(0, 100 * Self.plx)
        try l.send(1, .createCommunity(id: "north", scheme: .member, open: true))
        try l.send(2, .createCommunity(id: "south", scheme: .member, open: true))
        try l.next()
        let both = try l.propose(0, GovLedger.text("both", [Governance.root, "north", "south"]))
        let vetoed = try l.propose(0, GovLedger.text("vetoed", [Governance.root, "north", "south"], [.setParam(name: "minFee", value: 7)]))
        try l.advance(to: l.proposal(both).snapshot + 1)
        try l.vote(0, both, .for)
        try l.vote(1, both, .for)
        try l.vote(2, both, .for)
        try l.vote(0, vetoed, .for)
        try l.vote(1, vetoed, .for)
        try l.vote(2, vetoed, .against)  // south says no
        try l.advance(to: l.proposal(both).deadline + 1)
        #expect(l.stateOf(both) == .succeeded)
        #expect(l.stateOf(vetoed) == .defeated)
        #expect(throws: PlexusError.self) { try l.send(0, .queue(proposal: vetoed)) }
    }

    @Test func forksKeepSettingsAndHistoryAndMembersChoose() throws {
        let l = try GovLedger()
        try l.send(0, .createCommunity(id: "origin", scheme: .member, open: false))
        try l.send(1, .joinCommunity(id: "origin"))  // applies
        #expect(!l.state.isMember(l.address(1), of: "origin"))
        #expect(throws: PlexusError.self) { try l.send(2, .admitMember(community: "origin", account: l.address(1))) }  // not a member
        try l.send(0, .admitMember(community: "origin", account: l.address(1)))
        #expect(l.state.isMember(l.address(1), of: "origin"))
        try l.next()
        let change = try l.propose(0, GovLedger.text("tune", ["origin"], [.setCommunityParam(community: "origin", name: "votingPeriodBlocks", value: 7)]))
        try l.advance(to: l.proposal(change).snapshot + 1)
        try l.vote(0, change, .for)
        try l.vote(1, change, .for)
        try l.advance(to: l.proposal(change).deadline + 1)
        try l.send(0, .queue(proposal: change))
        try l.advance(to: l.proposal(change).eta!)
        try l.send(0, .execute(proposal: change))
        #expect(throws: PlexusError.self) { try l.send(3, .forkCommunity(parent: "origin", id: "splinter")) }  // not a member
        try l.send(1, .forkCommunity(parent: "origin", id: "splinter"))
        let fork = l.state.communities["splinter"]!
        #expect(fork.forkedFrom == "origin")
        #expect(fork.setting(.votingPeriodBlocks) == 7)
        #expect(fork.history == [change])
        #expect(!fork.open)
        try l.send(0, .joinCommunity(id: "splinter"))  // a member of the parent follows without admission
        #expect(l.state.isMember(l.address(0), of: "splinter"))
        try l.send(3, .joinCommunity(id: "splinter"))  // anyone else applies
        #expect(!l.state.isMember(l.address(3), of: "splinter"))
        try l.send(1, .leaveCommunity(id: "origin"))
        #expect(l.state.communities["origin"]!.memberCount == 1)
        #expect(l.state.communities["splinter"]!.memberCount == 2)
    }

    @Test func federationAssemblyIsDrawnWithFloorsAndRecomposed() throws {
        let l = try GovLedger(accounts: 20, params: ["assemblySeats": 6, "assemblyFloor": 1, "assemblyTermBlocks": 30, "sortitionDelayBlocks": 2])
        try l.stake(0, 100 * Self.plx)
        try l.send(0, .createCommunity(id: "big", scheme: .member, open: true))
        for i in 1..<12 { try l.send(i, .joinCommunity(id: "big")) }
        try l.send(12, .createCommunity(id: "small", scheme: .member, open: true))
        try l.send(13, .joinCommunity(id: "small"))
        try l.next()
        let join = try l.propose(0, GovLedger.text("federate", [Governance.root, "big", "small"],
                                                   [.federationJoin("big"), .federationJoin("small")]))
        try l.advance(to: l.proposal(join).snapshot + 1)
        for i in [0, 1, 12] { try l.vote(i, join, .for) }
        try l.advance(to: l.proposal(join).deadline + 1)
        try l.send(0, .queue(proposal: join))
        try l.advance(to: l.proposal(join).eta!)
        try l.send(0, .execute(proposal: join))
        let due = l.state.govTotals.pendingDraw!
        #expect(due == l.height + 2)
        try l.advance(to: due)
        // 12 and 2 members, 6 seats, floor 1: D'Hondt after floors gives 5 and 1.
        #expect(l.state.govTotals.seats == [5, 1])
        let assembly = l.state.govTotals.assembly.last!
        #expect(assembly.members.count == 6)
        #expect(assembly.members.filter { l.state.isMember($0, of: "small") }.count == 1)
        #expect(l.state.govTotals.termEnd == due + 30)
        // Representatives vote in the federation.
        try l.next()
        let rep = (0..<20).first { assembly.members.contains(l.address($0)) }!
        let fed = try l.propose(rep, GovLedger.text("assembly", [Governance.federation]))
        try l.advance(to: l.proposal(fed).snapshot + 1)
        try l.vote(rep, fed, .for)
        #expect(l.proposal(fed).votes[0].totalPower == 6)
        // Leaving recomposes the assembly.
        let leave = try l.propose(0, GovLedger.text("leave", [Governance.root, "small"], [.federationLeave("small")]))
        try l.advance(to: l.proposal(leave).snapshot + 1)
        try l.vote(0, leave, .for)
        try l.vote(12, leave, .for)
        try l.advance(to: l.proposal(leave).deadline + 1)
        try l.send(0, .queue(proposal: leave))
        try l.advance(to: l.proposal(leave).eta!)
        try l.send(0, .execute(proposal: leave))
        try l.advance(to: l.state.govTotals.pendingDraw!)
        #expect(l.state.govTotals.seats == [6])
        #expect(l.state.govTotals.assembly.last!.members.allSatisfy { l.state.isMember($0, of: "big") })
        // The term ends: a new draw is announced and held.
        try l.advance(to: l.state.govTotals.termEnd)
        #expect(l.state.govTotals.pendingDraw == l.height + 2)
    }

    @Test func listingRestrictsWhatNodesMayOffer() throws {
        let l = try GovLedger(params: ["modelListing": 1, "minNodeStake": 0])
        try l.stake(0, 100 * Self.plx)
        let card = ModelCard(id: "m1", weightsHash: Hash256.of([7]), architecture: "llama", quantization: "Q8_0", contextLength: 2048,
                             license: "apache-2.0", capabilities: ["chat"], creator: l.address(1), royaltyBps: 0)
        try l.send(1, .registerModel(card))
        let nodeKey = KeyPair.deterministic("listing-node")
        let proof = nodeKey.sign(Registry.nodeKeyProofBytes(chainId: l.state.chainId, owner: l.address(2)))
        let register = Transaction.Body.registerNode(nodeKey: nodeKey.address, keyProof: proof, endpoint: "http://127.0.0.1:1",
                                                     offers: [Offer(model: "m1", priceIn: Amount(units: 1), priceOut: Amount(units: 1))])
        #expect(throws: PlexusError.self) { try l.send(2, register) }
        try l.next()
        let list = try l.propose(0, GovLedger.text("list m1", [Governance.root], [.listModel("m1")]))
        try l.advance(to: l.proposal(list).snapshot + 1)
        try l.vote(0, list, .for)
        try l.advance(to: l.proposal(list).deadline + 1)
        try l.send(0, .queue(proposal: list))
        try l.advance(to: l.proposal(list).eta!)
        try l.send(0, .execute(proposal: list))
        #expect(l.state.listedModels == ["m1"])
        try l.send(2, register)
        #expect(l.state.nodes[l.address(2)] != nil)
    }
}
