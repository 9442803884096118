import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// A ledger restarted from its store must go on exactly as one that never stopped: what
/// `BlockStore.load` rebuilds (records, accounts, and every index derived from them) is
/// the state the blocks describe. The soak found a derived value that was not rebuilt
/// (the governance floor, below which vote histories are dropped): a restarted ledger
/// then sealed a state root no replay reproduces.
@Suite struct RestartPropertyTests {
    @Test(arguments: [1, 2])
    func aLedgerLoadedFromItsStoreContinuesWithTheSameRoots(seed: UInt64) throws {
        let plx = Amount.unitsPerPLX
        let n = 6
        let net = TestNetwork(accounts: n, balance: Amount(units: 10_000 * plx),
                              params: ["votingDelayBlocks": 1, "votingPeriodBlocks": 4, "timelockBlocks": 1, "quorumBps": 0,
                                       "lateQuorumExtensionBlocks": 0, "unbondingBlocks": 40, "maxPendingReleases": 1_000])
        var rng = SeededGenerator(seed: seed)
        var chain = try Chain(genesis: net.genesis)
        var commits: [BlockStore.Commit] = []
        var nonces = [UInt64](repeating: 0, count: n)
        var proposals: [Hash256] = []
        var time: UInt64 = 2_000
        var accepted = 0
        /// The state as sealed at each height, to compare what a load rebuilds with.
        var sealed: [UInt64: LedgerState] = [:]
        func seal() throws {
            if let c = try chain.seal(signer: net.orderer) {
                commits.append(c)
                sealed[c.block.header.height] = chain.state
            }
        }
        // Stake, unstake, delegation, proposals, votes and transfers, sealed into blocks of a few
        // transactions, with empty blocks between (as a quiet ledger's heartbeat seals them).
        for step in 0..<400 {
            let i = Int(rng.next() % UInt64(n))
            let body: Transaction.Body
            switch rng.next() % 9 {
            case 0, 1: body = .stake(amount: Amount(units: 1 + rng.next() % (20 * plx)))
            case 2: body = .unstake(amount: Amount(units: 1 + rng.next() % (5 * plx)))
            case 3: body = .delegate(to: net.keys[Int(rng.next() % UInt64(n))].address)
            case 4:
                let content = GovLedger.text("proposal \(seed) \(step)")
                proposals.append(content.id)
                body = .propose(content)
            case 5, 6:
                guard let id = proposals.randomElement(using: &rng) else { continue }
                body = .vote(proposal: id, weights: Choice(rawValue: Int(rng.next() % 3))!.weights)
            case 7: body = .transfer(to: net.keys[Int(rng.next() % UInt64(n))].address, amount: Amount(units: 1 + rng.next() % plx))
            default:
                time += 500
                try chain.openEmptyBlock(nowMillis: time)
                try seal()
                continue
            }
            let tx = net.tx(i, nonce: nonces[i], body)
            if (try? chain.submit(tx, hash: tx.hash, nowMillis: time)) != nil {
                nonces[i] += 1
                accepted += 1
            }
            if rng.next() % 3 == 0 {
                time += 500
                try seal()
            }
        }
        try seal()
        #expect(accepted > 150 && proposals.count > 20 && commits.count > 80)

        // Restart at every tenth height: load what the store holds, then apply the rest of the
        // blocks as they were sealed (each header's state root is checked).
        let dir = try TemporaryDirectory("plexus-restart")
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/ledger.sqlite")
        try store.initialize(genesis: net.genesis)
        for (k, c) in commits.enumerated() {
            try store.commit(c)
            guard k % 10 == 9 else { continue }
            let snap = try store.load()
            // Every index derived from the records is rebuilt as it stood.
            let was = try #require(sealed[c.block.header.height])
            let now = snap.state
            #expect(now.governanceFloor == was.governanceFloor, "governance floor at height \(c.block.header.height)")
            #expect(now.closing.filter { !$0.value.isEmpty } == was.closing.filter { !$0.value.isEmpty })
            #expect(now.openSnapshots.filter { $0.value > 0 } == was.openSnapshots.filter { $0.value > 0 })
            #expect(now.releases.filter { !$0.value.isEmpty } == was.releases.filter { !$0.value.isEmpty })
            #expect(now.finalizations.filter { !$0.value.isEmpty } == was.finalizations.filter { !$0.value.isEmpty })
            #expect(now.nodeOwners == was.nodeOwners)
            var restarted = Chain(state: snap.state, tipHash: snap.tipHash, orderer: net.genesis.orderer)
            for later in commits[(k + 1)...] {
                do {
                    _ = try restarted.apply(block: later.block)
                } catch {
                    Issue.record("restarted at height \(c.block.header.height), block \(later.block.header.height) does not follow: \(error)")
                    return
                }
            }
            #expect(restarted.stateRoot() == chain.stateRoot())
        }
    }
}
