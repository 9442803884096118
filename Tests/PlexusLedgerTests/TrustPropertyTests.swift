import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Random sequences of settlements, checks, verdicts (honest, lazy, false), challenges
/// (true and false), votes (matching and not), stake moves, verifier registrations, agents'
/// grants and revocations, agents' settlements (refunded to their payers when fraud is upheld)
/// and payments for calls:
/// supply is conserved to the base unit after every step, a refused transaction changes
/// nothing, and a ledger restarted from storage mid-way reaches the same state.
@Suite struct TrustPropertyTests {
    let base = VerificationStateTests(params: ["jailBlocks": 4, "disputeCommitBlocks": 6, "disputeRevealBlocks": 6])

    struct Vote { var fraud: Bool; var salt: Hash256 }

    @Test(arguments: [UInt64(11), 12, 13])
    func randomTrustSequencesConserveSupply(seed: UInt64) throws { try run(seed: seed, agents: false) }

    /// The same with agents among the requestors (their requests refunded to their payers when
    /// fraud is upheld), grants, revocations and payments for calls.
    @Test(arguments: [UInt64(21), 22, 23])
    func randomSequencesWithAgentsConserveSupply(seed: UInt64) throws { try run(seed: seed, agents: true) }

    func run(seed: UInt64, agents: Bool) throws {
        let l = try base.network()
        var rng = SeededGenerator(seed: seed)
        var ids: [(id: String, nodes: [Int])] = []
        var votes: [Hash256: [Address: Vote]] = [:]
        var accepted = 0, refused = 0
        var outcomes: Set<String> = []
        let people = Array(1...11).filter { $0 != 4 }
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        func attempt(_ i: Int, _ body: Transaction.Body) throws {
            try l.chain.openEmptyBlock(nowMillis: 2_000 + l.state.height)
            let before = l.snapshot
            let n = l.nonces[i] ?? 0
            let tx = l.net.tx(i, nonce: n, body)
            do {
                _ = try l.chain.submit(tx, hash: tx.hash, nowMillis: 2_000 + l.state.height)
                l.nonces[i] = n + 1
                accepted += 1
            } catch is PlexusError {
                refused += 1
                #expect(l.snapshot == before, "\(tx.body.kind.name) was refused but changed the state")
            }
        }
        var agentRng = SeededGenerator(seed: seed &+ 1_000)
        func pickA<T>(_ a: [T]) -> T { a[Int(agentRng.next() % UInt64(a.count))] }
        /// One agent operation: a grant or revocation, an agent's request settled, a call paid.
        func agentStep(_ step: Int) throws {
            switch agentRng.next() % 3 {
            case 0:
                // Payers 5 and 6 grant (often a policy that is wrong somehow) or revoke; agents are 3 and 11.
                let payer = pickA([5, 6, 5, 6, 11]), agent = pickA([3, 11])
                if agentRng.next() % 4 == 0 { try attempt(payer, .revokeAgent(agent: l.address(agent))); return }
                let budget = pickA([0, 30_000, 90_000, 400_000, UInt64.max])
                let policy = AgentPolicy(budget: Amount(units: budget), periodBlocks: pickA([0, 5, 40]),
                                         maxPerRequest: Amount(units: pickA([0, 45_000, 70_000, budget &+ 1])),
                                         models: pickA([[], ["m"], ["other"], ["m", "m"]]), expiresHeight: pickA([0, 0, l.state.height + 20, 1]))
                try attempt(payer, .grantAgent(agent: l.address(agent), policy: policy))
            case 1:
                // An agent's request (40,000 to 100,000 units), settled within its policy or refused.
                let id = "g\(step)"
                ids.append((id, [0]))
                try attempt(4, .settle(receipts: [base.receipt(id, requestor: pickA([3, 11]), node: 0, output: 10 + agentRng.next() % 30,
                                                               exact: agentRng.next() % 8 != 0)]))
            default:
                guard let (id, _) = ids.randomElement(using: &agentRng) else { return }
                let rid = Hash256.of(Array(id.utf8))
                let to = l.state.settlements[rid]?.requestor ?? l.address(pickA([5, 6]))
                try attempt(pickA([3, 11, 7, 8]), .payForCall(to: agentRng.next() % 6 == 0 ? l.address(pickA([5, 6])) : to,
                                                            amount: Amount(units: pickA([0, 1_000, 50_000, UInt64.max])), requestId: rid))
            }
        }
        for step in 0..<900 {
            // The agents' part draws from a generator of its own, so the rest of the run keeps its sequence.
            if agents, agentRng.next() % 3 == 0 { try agentStep(step) }
            switch rng.next() % 12 {
            case 0, 1:
                let id = "r\(step)"
                let failover = rng.next() % 5 == 0
                let nodes = failover ? [0, 1] : [Int(rng.next() % 2)]
                var receipts = [base.receipt(id, requestor: pick([5, 6]), node: nodes[0], output: 4 + rng.next() % 20, exact: rng.next() % 8 != 0)]
                if failover { receipts.append(base.receipt(id, requestor: receipts[0].requestor == l.address(5) ? 5 : 6, node: 1, output: 5, first: receipts[0].outputTokens)) }
                ids.append((id, nodes))
                try attempt(4, .settle(receipts: receipts))
            case 2, 3:
                guard let (id, nodes) = ids.randomElement(using: &rng) else { continue }
                let rid = Hash256.of(Array(id.utf8))
                let assigned = l.state.checks[rid]?.verifier
                let sender = assigned.map(base.index) ?? pick(people)
                let from = rng.next() % 6 == 0 ? pick(people) : sender
                switch rng.next() % 8 {
                case 0, 1, 2, 3, 4: try attempt(from, .verdict(requestId: rid, pass: true, share: 0, evidence: nodes.map { base.evidence(id, node: $0) }))
                case 5: try attempt(from, .verdict(requestId: rid, pass: true, share: 0, evidence: nodes.map { _ in ChunkEvidence(chunk: .zero, path: []) }))
                default: try attempt(from, .verdict(requestId: rid, pass: false, share: UInt8(rng.next() % 3), evidence: []))
                }
            case 4:
                guard let (id, _) = ids.randomElement(using: &rng) else { continue }
                let bond: UInt64 = pick([VerificationStateTests.plx - 1, VerificationStateTests.plx, 3 * VerificationStateTests.plx, UInt64.max / 2])
                try attempt(pick([11, 5, 6, 1, 7]), .challenge(requestId: Hash256.of(Array(id.utf8)), share: UInt8(rng.next() % 3), bond: Amount(units: bond)))
            case 5, 6, 9:
                for d in l.state.disputes.values.filter({ $0.outcome == .open }).sorted(by: { $0.requestId < $1.requestId }) {
                // The committee mostly agrees (on fraud, or not, by the dispute); some members stray or stay silent.
                let side = d.requestId.bytes[0] & 1 == 0
                for seat in d.seats where rng.next() % 8 != 0 {
                    let m = seat.member
                    let from = rng.next() % 8 == 0 ? pick(people) : base.index(of: m)
                    // The height the transaction lands at.
                    if l.state.height + (l.chain.hasOpenBlock ? 0 : 1) < d.revealHeight {
                        let v = Vote(fraud: rng.next() % 5 == 0 ? !side : side, salt: Hash256.of(Array("salt \(step) \(m)".utf8)))
                        let commitment = rng.next() % 10 == 0 ? Hash256.of([UInt8(step & 0xff)]) : Dispute.voteCommitment(requestId: d.requestId, member: m, fraud: v.fraud, salt: v.salt)
                        try attempt(from, .commitVote(requestId: d.requestId, commitment: commitment))
                        if l.state.disputes[d.requestId]?.seats.first(where: { $0.member == m })?.commit == commitment { votes[d.requestId, default: [:]][m] = v }
                    } else if let v = votes[d.requestId]?[m] {
                        try attempt(from, .revealVote(requestId: d.requestId, fraud: rng.next() % 10 == 0 ? !v.fraud : v.fraud, salt: v.salt))
                    }
                }
                }
            case 7:
                let who = pick([1, 2, 7, 8, 9, 10, 11])
                let amount = Amount(units: pick([1, 5 * VerificationStateTests.plx, 50 * VerificationStateTests.plx, UInt64.max]))
                try attempt(who, rng.next() % 2 == 0 ? .stake(amount: amount) : .unstake(amount: amount))
            case 8:
                try attempt(pick([1, 2, 7, 8, 9, 10, 11]), rng.next() % 3 == 0 ? .deregisterVerifier : .registerVerifier)
            default:
                try l.tick()
            }
            if rng.next() % 3 == 0, let c = try l.chain.seal(signer: l.net.orderer) { l.commits.append(c) }
            #expect(try l.state.circulatingTotal() == l.state.totalSupply)
            for d in l.state.disputes.values where d.outcome != .open { outcomes.insert(d.outcome.name) }
            if step == 450 { try restartMatches(l) }
        }
        try l.tick(until: l.state.height + 40)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
        try restartMatches(l)
        #expect(accepted > 200 && refused > 100)
        if agents {
            // The agents' part reached each of its outcomes.
            #expect(l.state.settlements.values.contains { l.state.agents[$0.requestor] != nil }, "no agent's request settled")
            #expect(!l.state.callPayments.isEmpty, "no call was paid")
            return
        }
        let states = Set(l.state.checks.values.map(\.state.name))
        #expect(states.isSuperset(of: ["passed", "missed"]), "check states reached: \(states)")
        #expect(outcomes.isSuperset(of: ["upheld", "rejected"]), "dispute outcomes reached: \(outcomes); states \(states)")
        #expect(l.state.settlements.values.contains { $0.status == .refunded })
    }

    /// Replays the sealed blocks on a fresh chain and, through storage, loads the state: both match.
    func restartMatches(_ l: VerificationStateTests.Ledger) throws {
        if let c = try l.chain.seal(signer: l.net.orderer) { l.commits.append(c) }
        var replica = try Chain(genesis: l.net.genesis)
        for c in l.commits { _ = try replica.apply(block: c.block) }
        #expect(replica.stateRoot() == l.chain.stateRoot())
        let dir = try TemporaryDirectory("plexus-trust")
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/ledger.sqlite")
        try store.initialize(genesis: l.net.genesis)
        for c in l.commits { try store.commit(c) }
        var loaded = try store.load().state
        #expect(loaded.commit().root == l.chain.stateRoot())
        #expect(loaded.checkDraws == l.state.checkDraws.filter { !$0.value.isEmpty })
        #expect(loaded.disputeSteps.mapValues { $0 } == l.state.disputeSteps.filter { !$0.value.isEmpty })
        #expect(loaded.checkDeadlines == l.state.checkDeadlines.filter { !$0.value.isEmpty })
    }
}
