import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct ChainTests {
    let net = TestNetwork(accounts: 4)

    func blocks(_ count: Int) throws -> [Block] {
        var c = try Chain(genesis: net.genesis)
        var out: [Block] = []
        for h in 0..<count {
            for i in 0..<3 {
                let tx = net.tx(i, nonce: UInt64(h), .transfer(to: net.keys[i + 1].address, amount: Amount(units: 10)))
                _ = try c.submit(tx, hash: tx.hash, nowMillis: 2_000 + UInt64(h))
            }
            if let commit = try c.seal(signer: net.orderer) { out.append(commit.block) }
        }
        return out
    }

    @Test func replicasAcceptAnHonestChain() throws {
        let chain = try blocks(3)
        var r = try Chain(genesis: net.genesis)
        for b in chain { _ = try r.apply(block: b) }
        #expect(r.state.height == 3)
    }

    @Test func tamperedBlocksAreRejected() throws {
        let chain = try blocks(2)
        var tampered: [(String, Block)] = []
        var b = chain[0]
        b.transactions.swapAt(0, 1)
        tampered.append(("reordered transactions", b))
        b = chain[0]
        b.header.stateRoot = Hash256.of([1])
        tampered.append(("forged state root", b))
        b = chain[0]
        b.signature = net.keys[0].sign(b.header.hash.bytes)
        tampered.append(("signed by a non-orderer", b))
        tampered.append(("skipped block", chain[1]))
        b = chain[0]
        b.transactions[0].signature = net.keys[3].sign(b.transactions[0].signingBytes)
        tampered.append(("forged transaction signature", b))
        for (name, block) in tampered {
            var r = try Chain(genesis: net.genesis)
            #expect(throws: PlexusError.self, "\(name)") { try r.apply(block: block) }
        }
    }

    @Test func onlyTheOrdererSeals() throws {
        var c = try Chain(genesis: net.genesis)
        let tx = net.tx(0, nonce: 0, .stake(amount: Amount(units: 5)))
        _ = try c.submit(tx, hash: tx.hash, nowMillis: 2_000)
        #expect(throws: PlexusError.self) { try c.seal(signer: net.keys[0]) }
    }

    @Test func blockTimeNeverGoesBackwards() throws {
        var c = try Chain(genesis: net.genesis)
        let t1 = net.tx(0, nonce: 0, .stake(amount: Amount(units: 5)))
        _ = try c.submit(t1, hash: t1.hash, nowMillis: 5_000)
        let b1 = try c.seal(signer: net.orderer)
        let t2 = net.tx(0, nonce: 1, .stake(amount: Amount(units: 5)))
        _ = try c.submit(t2, hash: t2.hash, nowMillis: 10) // clock went backwards
        let b2 = try c.seal(signer: net.orderer)
        #expect(b2!.block.header.timeMillis >= b1!.block.header.timeMillis)
    }
}

@Suite struct StateCommitmentTests {
    @Test func rootIsIndependentOfUpdateOrderAndIncremental() {
        var rng = SeededGenerator(seed: 9)
        let keys = (0..<2_000).map { _ in Digest32(w0: rng.next(), w1: rng.next(), w2: 0, w3: 0) }
        let values = keys.map { _ in Digest32(w0: rng.next(), w1: 1, w2: 2, w3: 3) }
        var forward = StateCommitment()
        for (k, v) in zip(keys, values) { forward.update(key: k, value: v) }
        var backward = StateCommitment()
        for (k, v) in zip(keys, values).reversed() {
            backward.update(key: k, value: v)
            if rng.next() % 100 == 0 { _ = backward.root() }
        }
        #expect(forward.root() == backward.root())
        // Changing one value changes the root; changing it back restores it.
        let r0 = forward.root()
        forward.update(key: keys[7], value: Digest32(w0: 0, w1: 0, w2: 0, w3: 1))
        #expect(forward.root() != r0)
        forward.update(key: keys[7], value: values[7])
        #expect(forward.root() == r0)
        forward.update(key: keys[8], value: nil)
        #expect(forward.root() != r0)
        #expect(forward.count == 1_999)
    }
}
