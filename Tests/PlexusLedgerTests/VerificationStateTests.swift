import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Spot checks, verdicts, challenges, disputes, slashing and jailing through the state machine.
@Suite struct VerificationStateTests {
    static let plx = Amount.unitsPerPLX
    // keys: 0 creator, 1 and 2 node owners, 3 gateway owner, 4 gateway key, 5 and 6 requestors,
    // 7...10 verifiers, 11 an outside challenger
    static let params: [String: UInt64] = [
        "challengeWindowBlocks": 12, "verdictDeadlineBlocks": 6, "disputeCommitBlocks": 3, "disputeRevealBlocks": 3,
        "unbondingBlocks": 40, "minNodeStake": 10 * plx, "minVerifierStake": 10 * plx, "committeeSize": 3,
        "verifySampleBps": 10_000, "jailBlocks": 50, "verifierFee": 7_000,
    ]
    let net: TestNetwork

    init() { net = TestNetwork(accounts: 12, params: Self.params) }

    /// With some parameters changed.
    init(params extra: [String: UInt64]) { net = TestNetwork(accounts: 12, params: Self.params.merging(extra) { $1 }) }

    let nodeKeys = [KeyPair.deterministic("node-a"), KeyPair.deterministic("node-b")]
    let weights = Hash256.of(Array("weights".utf8))
    var chainId: String { net.genesis.chainId }
    var verifierIndices: [Int] { [7, 8, 9, 10] }

    final class Ledger {
        var chain: Chain
        var nonces: [Int: UInt64] = [:]
        /// Every sealed block, to replay or store.
        var commits: [BlockStore.Commit] = []
        let net: TestNetwork
        init(_ net: TestNetwork) throws {
            chain = try Chain(genesis: net.genesis)
            self.net = net
        }
        /// Sends `body` from account `i`; seals its block unless told not to.
        @discardableResult
        func send(_ i: Int, _ body: Transaction.Body, seal: Bool = true) throws -> [Event] {
            let n = nonces[i] ?? 0
            let tx = net.tx(i, nonce: n, body)
            _ = try chain.submit(tx, hash: tx.hash, nowMillis: 2_000 + chain.state.height)
            nonces[i] = n + 1
            let events = chain.open?.events.map(\.event) ?? []
            if seal, let c = try chain.seal(signer: net.orderer) { commits.append(c) }
            return events
        }
        /// Advances one block (a fee-paying transfer to oneself from account 0).
        @discardableResult
        func tick() throws -> [Event] { try send(0, .transfer(to: net.keys[0].address, amount: Amount(units: 1))) }
        func tick(until height: UInt64) throws { while chain.state.height < height { try tick() } }
        var state: LedgerState { chain.state }
        func address(_ i: Int) -> Address { net.keys[i].address }
        /// Everything a transaction could change.
        var snapshot: [String] {
            [String(describing: state.accounts.sorted { $0.key < $1.key }), String(describing: state.checks.sorted { $0.key < $1.key }),
             String(describing: state.disputes.sorted { $0.key < $1.key }), String(describing: state.settlements.sorted { $0.key < $1.key }),
             String(describing: state.standings.sorted { $0.key < $1.key }), String(describing: state.verifiers.keys.sorted()),
             String(describing: state.agents.sorted { $0.key < $1.key }), String(describing: state.callPayments.sorted { $0.key < $1.key }),
             String(describing: state.evaluations.sorted { $0.key < $1.key }), String(describing: state.service.sorted { $0.key < $1.key })]
        }
        /// Expects `body` from `i` to be refused and to change nothing but what the rejected submission cannot.
        func refuse(_ i: Int, _ body: Transaction.Body, sourceLocation: SourceLocation = #_sourceLocation) throws {
            // Into an open block, so that the snapshot already holds what the block's start did.
            try chain.openEmptyBlock(nowMillis: 2_000 + chain.state.height)
            let before = snapshot
            let n = nonces[i] ?? 0
            let tx = net.tx(i, nonce: n, body)
            #expect(throws: PlexusError.self, sourceLocation: sourceLocation) { try chain.submit(tx, hash: tx.hash, nowMillis: 2_000 + chain.state.height) }
            #expect(snapshot == before, sourceLocation: sourceLocation)
        }
    }

    /// A ledger with the model, two staked nodes, a gateway, four staked verifiers and escrow.
    func network(royaltyBps: UInt16 = 0) throws -> Ledger {
        let l = try Ledger(net)
        let card = ModelCard(id: "m", weightsHash: weights, architecture: "llama", quantization: "Q8_0", contextLength: 8192,
                             license: "apache-2.0", capabilities: ["chat"], creator: net.keys[0].address, royaltyBps: royaltyBps)
        try l.send(0, .registerModel(card))
        for (i, owner) in [1, 2].enumerated() {
            try l.send(owner, .stake(amount: Amount(units: 100 * Self.plx)))
            let proof = nodeKeys[i].sign(Registry.nodeKeyProofBytes(chainId: chainId, owner: l.address(owner)))
            try l.send(owner, .registerNode(nodeKey: nodeKeys[i].address, keyProof: proof, endpoint: "http://127.0.0.1:\(9000 + i)",
                                            offers: [Offer(model: "m", priceIn: Amount(units: Self.plx), priceOut: Amount(units: 2 * Self.plx))]))
        }
        let gk = net.keys[4]
        try l.send(3, .registerGateway(key: gk.address, keyProof: gk.sign(Registry.gatewayKeyProofBytes(chainId: chainId, owner: l.address(3)))))
        for r in [5, 6] { try l.send(r, .deposit(requestor: l.address(r), amount: Amount(units: 100 * Self.plx))) }
        for (k, v) in verifierIndices.enumerated() {
            try l.send(v, .stake(amount: Amount(units: UInt64(20 + 10 * k) * Self.plx)))
            try l.send(v, .registerVerifier)
        }
        return l
    }

    /// Chunk hashes standing for a run's hidden states.
    func chunks(_ id: String, _ n: Int) -> [Hash256] { (0..<n).map { Hash256.of(Array("\(id) chunk \($0)".utf8)) } }

    func receipt(_ id: String, requestor: Int = 5, node: Int = 0, output: UInt64 = 10, first: UInt64 = 0, chunks n: Int = 5,
                 exact: Bool = true) -> Receipt {
        var r = Receipt(requestId: Hash256.of(Array(id.utf8)), requestHash: Hash256.of(Array("body \(id)".utf8)),
                        requestor: net.keys[requestor].address, node: nodeKeys[node].address, modelHash: weights,
                        inputTokens: 20, outputTokens: output, firstOutputToken: first,
                        priceIn: Amount(units: Self.plx), priceOut: Amount(units: 2 * Self.plx),
                        outputHash: Hash256.of(Array("out \(id)".utf8)), timeMillis: 1,
                        commitment: ReceiptCommitment(root: MerkleRoot.of(chunks(id + "/\(node)", n)), chunks: UInt32(n), exact: exact))
        r.signAsNode(nodeKeys[node], chainId: chainId)
        r.countersign(net.keys[4], chainId: chainId)
        return r
    }

    func evidence(_ id: String, node: Int = 0, chunks n: Int = 5) -> ChunkEvidence {
        let c = chunks(id + "/\(node)", n)
        return ChunkEvidence(chunk: c[n - 1], path: MerkleRoot.path(c, index: n - 1))
    }

    func index(of a: Address) -> Int { net.keys.firstIndex { $0.address == a } ?? -1 }

    /// Settles `id` and starts the next block, which draws its check.
    func settleAndDraw(_ l: Ledger, _ r: [Receipt]) throws -> Check {
        try l.send(4, .settle(receipts: r))
        try l.tick()
        return try #require(l.state.checks[r[0].requestId])
    }

    @Test func merklePathsProveEveryLeafAndNothingElse() {
        for n in 1...37 {
            let leaves = chunks("m\(n)", n)
            let root = MerkleRoot.of(leaves)
            for i in 0..<n {
                let path = MerkleRoot.path(leaves, index: i)
                #expect(MerkleRoot.verify(leaf: leaves[i], index: UInt64(i), count: UInt64(n), path: path, root: root))
                #expect(!MerkleRoot.verify(leaf: leaves[(i + 1) % n], index: UInt64(i), count: UInt64(n), path: path, root: root) || n == 1)
                if !path.isEmpty {
                    #expect(!MerkleRoot.verify(leaf: leaves[i], index: UInt64(i), count: UInt64(n), path: Array(path.dropLast()), root: root))
                }
            }
        }
    }

    @Test func aCheckedRequestPassesWithEvidenceAndPaysItsVerifier() throws {
        let l = try network()
        let r = receipt("req-pass")
        let check = try settleAndDraw(l, [r])
        #expect(check.state == .assigned && check.shares.count == 1 && check.deadline == l.state.height + 6)
        let v = try #require(check.verifier)
        #expect(verifierIndices.contains(index(of: v)))
        let outsider = verifierIndices.first { net.keys[$0].address != v }!
        // Not assigned; evidence for another share count; a failure naming a share that does not exist.
        try l.refuse(outsider, .verdict(requestId: r.requestId, pass: true, share: 0, evidence: [evidence("req-pass")]))
        try l.refuse(index(of: v), .verdict(requestId: r.requestId, pass: true, share: 0, evidence: []))
        try l.refuse(index(of: v), .verdict(requestId: r.requestId, pass: false, share: 3, evidence: []))
        let balance = l.state.account(v).balance
        try l.send(index(of: v), .verdict(requestId: r.requestId, pass: true, share: 0, evidence: [evidence("req-pass")]))
        #expect(l.state.checks[r.requestId]?.state == .passed)
        #expect(l.state.account(v).balance.units == balance.units + 7_000 - 1_000)  // the fee per verdict, less the tx fee
        #expect(l.state.reputation(of: v) > Standing.neutral && l.state.reputation(of: l.address(1)) > Standing.neutral)
        try l.refuse(index(of: v), .verdict(requestId: r.requestId, pass: true, share: 0, evidence: [evidence("req-pass")]))
        // The settlement pays out as usual.
        try l.tick(until: l.state.settlements[r.requestId]!.finalHeight)
        #expect(l.state.settlements[r.requestId]?.status == .final)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func receiptsThatCannotBeReExecutedAreNotChecked() throws {
        let l = try network()
        let r = receipt("req-upstream", exact: false)
        try l.send(4, .settle(receipts: [r]))
        try l.tick()
        #expect(l.state.checks[r.requestId] == nil)
        #expect(l.state.settlements[r.requestId]?.status == .pending)
        // The operator's standing counts the request and its tokens (20 in, 10 out), and keeps them through its stored form.
        let owner = try #require(l.state.nodeOwners[r.node])
        #expect(l.state.standing(owner).served == 1 && l.state.standing(owner).servedTokens == 30)
        #expect(try Standing(canonicalBytes: l.state.standing(owner).canonicalBytes).servedTokens == 30)
        // A standing stored before tokens were counted (10 fields) still reads, with none.
        let old = Array(l.state.standing(owner).canonicalBytes.dropLast(8))
        #expect(try Standing(canonicalBytes: old).served == 1 && Standing(canonicalBytes: old).servedTokens == 0)
    }

    @Test func aLazyVerifierIsSlashedAndJailed() throws {
        let l = try network()
        let r = receipt("req-lazy")
        let v = try #require(try settleAndDraw(l, [r]).verifier)
        let staked = l.state.account(v).staked
        // A pass "proved" with the root itself: what a verifier that never ran the model can offer.
        let fake = ChunkEvidence(chunk: r.commitment!.root, path: [])
        let events = try l.send(index(of: v), .verdict(requestId: r.requestId, pass: true, share: 0, evidence: [fake]))
        #expect(events.contains { if case let .trust(a, _, _) = $0 { a == "verdict_faulted" } else { false } })
        #expect(l.state.checks[r.requestId]?.state == .faulted)
        #expect(l.state.account(v).staked.units == staked.units - staked.units / 100)  // verifierPenaltyBps 100
        #expect(l.state.standing(v).isJailed(at: l.state.height) && l.state.reputation(of: v) < Standing.neutral)
        try l.refuse(index(of: v), .unstake(amount: Amount(units: 1)))
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func aMissedDeadlineCostsReputation() throws {
        let l = try network()
        let r = receipt("req-missed")
        let check = try settleAndDraw(l, [r])
        let v = try #require(check.verifier)
        try l.tick(until: check.deadline)
        #expect(l.state.checks[r.requestId]?.state == .missed)
        #expect(l.state.standing(v).misses == 1 && l.state.reputation(of: v) == Standing.neutral - Standing.missPenalty)
        try l.refuse(index(of: v), .verdict(requestId: r.requestId, pass: true, share: 0, evidence: [evidence("req-missed")]))
    }

    /// Drives a dispute's committee to vote `fraud` (all members, or all but the first, who votes the other way).
    func vote(_ l: Ledger, _ id: Hash256, fraud: Bool, dissent: Bool = false) throws -> [Address] {
        let d = try #require(l.state.disputes[id])
        try l.tick(until: d.drawHeight)
        let members = try #require(l.state.disputes[id]).seats.map(\.member)
        #expect(!members.isEmpty && !members.contains(d.accused) && !members.contains(d.challenger))
        func choice(_ k: Int) -> Bool { dissent && k == 0 ? !fraud : fraud }
        for (k, m) in members.enumerated() {
            let salt = Hash256.of(Array("salt \(k)".utf8))
            try l.send(index(of: m), .commitVote(requestId: id, commitment: Dispute.voteCommitment(requestId: id, member: m, fraud: choice(k), salt: salt)),
                       seal: false)
        }
        try l.tick()
        // Reveals wait for the reveal phase.
        try l.refuse(index(of: members[0]), .revealVote(requestId: id, fraud: choice(0), salt: Hash256.of(Array("salt 0".utf8))))
        try l.tick(until: d.revealHeight)
        try l.refuse(index(of: members[0]), .commitVote(requestId: id, commitment: .zero))
        try l.refuse(index(of: members[0]), .revealVote(requestId: id, fraud: !choice(0), salt: Hash256.of(Array("salt 0".utf8))))
        for (k, m) in members.enumerated() {
            try l.send(index(of: m), .revealVote(requestId: id, fraud: choice(k), salt: Hash256.of(Array("salt \(k)".utf8))), seal: false)
        }
        try l.tick()
        try l.tick(until: d.resolveHeight)
        return members
    }

    @Test func aFailedVerdictOpensADisputeThatSlashesJailsAndRefunds() throws {
        let l = try network()
        let r = receipt("req-fraud", output: 30)
        let v = try #require(try settleAndDraw(l, [r]).verifier)
        let owner = l.address(1), requestor = l.address(5)
        let stake0 = l.state.account(owner).staked, escrow0 = l.state.account(requestor).escrow
        let charge = try #require(l.state.settlements[r.requestId]).charge
        // Part of the stake starts unbonding: it stays slashable and is held while the dispute is open.
        try l.send(1, .unstake(amount: Amount(units: 50 * Self.plx)))
        try l.send(index(of: v), .verdict(requestId: r.requestId, pass: false, share: 0, evidence: []))
        #expect(l.state.settlements[r.requestId]?.status == .disputed)
        #expect(l.state.disputes[r.requestId]?.challenger == v && l.state.disputes[r.requestId]?.bond == .zero)
        // A second challenge of the same receipt is refused.
        try l.refuse(11, .challenge(requestId: r.requestId, share: 0, bond: Amount(units: 5 * Self.plx)))
        let vBalance = l.state.account(v).balance
        let members = try vote(l, r.requestId, fraud: true, dissent: true)
        let d = try #require(l.state.disputes[r.requestId])
        #expect(d.outcome == .upheld)
        let slashed = stake0.units / 10  // slashBps 1000 of bonded + unbonding
        #expect(d.slashed.units == slashed)
        let a = l.state.account(owner)
        #expect(a.staked.units + a.unbondingTotal.units == stake0.units - slashed)
        #expect(l.state.account(requestor).escrow.units == escrow0.units + charge.units)  // the whole charge is back
        #expect(l.state.settlements[r.requestId]?.status == .refunded && charge.units > 0)
        #expect(l.state.account(v).balance.units >= vBalance.units + slashed / 5)  // challengerShareBps 2000
        #expect(l.state.standing(owner).isJailed(at: l.state.height) && l.state.reputation(of: owner) == 0)
        // The member who voted against the majority was penalised.
        #expect(l.state.standing(members[0]).faults == 1 && l.state.reputation(of: members[0]) < Standing.neutral)
        // Jailed: no unstaking, no new settlements for its node.
        try l.refuse(1, .unstake(amount: Amount(units: 1)))
        try l.send(4, .settle(receipts: [receipt("req-after-jail", output: 1)]))
        #expect(l.state.settlements[Hash256.of(Array("req-after-jail".utf8))] == nil)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
        // The settlement never pays out; the low reputation makes every later request checked.
        try l.tick(until: l.state.height + 15)
        #expect(l.state.settlements[r.requestId]?.status == .refunded)
        #expect(l.state.sampleRate(of: owner) == 10_000)
    }

    @Test func aRejectedChallengePaysItsBondToTheNodeAndCommittee() throws {
        let l = try network()
        let r = receipt("req-honest")
        _ = try settleAndDraw(l, [r])
        let owner = l.address(1)
        // Hostile: a bond below the minimum, the node challenging itself, a share that does not exist.
        try l.refuse(11, .challenge(requestId: r.requestId, share: 0, bond: Amount(units: Self.plx - 1)))
        try l.refuse(1, .challenge(requestId: r.requestId, share: 0, bond: Amount(units: Self.plx)))
        try l.refuse(11, .challenge(requestId: r.requestId, share: 1, bond: Amount(units: Self.plx)))
        let bond = Amount(units: 4 * Self.plx)
        let challenger0 = l.state.account(l.address(11)).balance
        try l.send(11, .challenge(requestId: r.requestId, share: 0, bond: bond))
        #expect(l.state.account(l.address(11)).balance.units == challenger0.units - bond.units - 1_000)
        // A vote from an account not on the committee.
        try l.refuse(6, .commitVote(requestId: r.requestId, commitment: .zero))
        let owner0 = l.state.account(owner).balance
        let members = try vote(l, r.requestId, fraud: false)
        #expect(l.state.disputes[r.requestId]?.outcome == .rejected)
        let toCommittee = bond.units / 10 / UInt64(members.count) * UInt64(members.count)
        #expect(l.state.account(owner).balance.units == owner0.units + bond.units - toCommittee)
        #expect(l.state.settlements[r.requestId]?.status == .pending)
        try l.tick(until: l.state.settlements[r.requestId]!.finalHeight)
        #expect(l.state.settlements[r.requestId]?.status == .final)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func challengesAfterTheWindowAreRefused() throws {
        let l = try network()
        let r = receipt("req-late")
        _ = try settleAndDraw(l, [r])
        try l.tick(until: l.state.settlements[r.requestId]!.finalHeight)
        try l.refuse(11, .challenge(requestId: r.requestId, share: 0, bond: Amount(units: Self.plx)))
        try l.refuse(11, .challenge(requestId: Hash256.of(Array("never settled".utf8)), share: 0, bond: Amount(units: Self.plx)))
    }

    @Test func nobodyRevealingDismissesAndPenalisesTheCommittee() throws {
        let l = try network()
        let r = receipt("req-silent")
        _ = try settleAndDraw(l, [r])
        try l.send(11, .challenge(requestId: r.requestId, share: 0, bond: Amount(units: Self.plx)))
        let d = try #require(l.state.disputes[r.requestId])
        let balance = l.state.account(l.address(11)).balance
        try l.tick(until: d.resolveHeight - 1)
        let misses = Dictionary(uniqueKeysWithValues: l.state.disputes[r.requestId]!.seats.map { ($0.member, l.state.standing($0.member).misses) })
        try l.tick(until: d.resolveHeight)
        let done = try #require(l.state.disputes[r.requestId])
        #expect(done.outcome == .dismissed && done.seats.count == 3)
        #expect(l.state.account(l.address(11)).balance.units == balance.units + Self.plx)
        for s in done.seats { #expect(l.state.standing(s.member).misses == misses[s.member]! + 1) }
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func oneStakeSecuresEveryRoleAndEachMinimumHolds() throws {
        let l = try network()
        // Node owner 1 becomes a verifier on the same stake.
        try l.send(1, .registerVerifier)
        try l.refuse(1, .registerVerifier)
        try l.refuse(1, .unstake(amount: Amount(units: 91 * Self.plx)))  // both minimums are 10 PLX
        try l.send(1, .unstake(amount: Amount(units: 90 * Self.plx)))
        try l.refuse(1, .unstake(amount: Amount(units: 1)))
        try l.send(1, .deregisterVerifier)
        try l.refuse(1, .deregisterVerifier)
        try l.refuse(11, .registerVerifier)  // nothing staked
    }

    @Test func parameterBoundsKeepStakeSlashableThroughADispute() throws {
        var p = Params.defaults
        try p.checkRelations()
        try p.set("unbondingBlocks", to: 31)  // = 20 + 1 + 5 + 5
        #expect(throws: PlexusError.self) { try p.checkRelations() }
        try p.set("unbondingBlocks", to: 32)
        try p.checkRelations()
        try p.set("verdictDeadlineBlocks", to: 20)
        #expect(throws: PlexusError.self) { try p.checkRelations() }
        #expect(throws: PlexusError.self) {
            try Genesis(chainId: "x", timeMillis: 0, orderer: KeyPair.deterministic("o").address, params: ["unbondingBlocks": 10], accounts: []).initialState()
        }
    }
}
