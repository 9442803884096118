import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Ordered blocks, as a replicated ledger's sealer cuts them and every replica applies
/// them: pure, without etcd.
@Suite struct OrderedChainTests {
    let net = TestNetwork(accounts: 4)
    var sealers: Set<Address> { [net.orderer.address] }

    func transfer(_ i: Int, nonce: UInt64, units: UInt64 = 10) -> Transaction {
        net.tx(i, nonce: nonce, .transfer(to: net.keys[(i + 1) % 4].address, amount: Amount(units: units)))
    }

    func cut(_ chain: Chain, _ txs: [Transaction], by signer: KeyPair? = nil) -> Block {
        chain.cut(txs, hashes: txs.map(\.hash), signer: signer ?? net.orderer, nowMillis: 5_000)
    }

    @Test func replicasApplyTheSameBlocksToTheSameRootsAndFlagRefusedTransactionsAlike() throws {
        var sealer = try Chain(genesis: net.genesis)
        var replica = try Chain(genesis: net.genesis)
        // A stale nonce and an overdraft ride along with valid transfers.
        let txs = [transfer(0, nonce: 0), transfer(0, nonce: 0), transfer(1, nonce: 0, units: UInt64.max / 2), transfer(2, nonce: 0)]
        let block = cut(sealer, txs)
        #expect(block.header.ordered && block.header.height == 1)
        #expect(block.header.stateRoot == sealer.committedRoot)
        #expect(sealer.refusal(of: block, sealers: sealers) == nil)
        let a = try sealer.applyOrdered(block: block)
        let b = try replica.applyOrdered(block: block)
        #expect(a.invalid == [1, 2] && b.invalid == [1, 2])
        #expect(a.stateRoot == b.stateRoot && a.hash == b.hash)
        let flagged = b.events.compactMap { e -> Hash256? in if case let .transactionInvalid(h, _) = e.event { return h } else { return nil } }
        #expect(flagged == [txs[1].hash, txs[2].hash])
        #expect(replica.state.account(net.keys[0].address).nonce == 1)
        #expect(replica.state.account(net.keys[1].address).nonce == 0)
        // The next block carries the root after this one, and a replica checks it.
        let next = cut(sealer, [transfer(1, nonce: 0)])
        #expect(next.header.stateRoot == a.stateRoot)
        _ = try replica.applyOrdered(block: next)
        #expect(replica.state.height == 2)
        // The encoding keeps the ordered domain.
        #expect(try Block(canonicalBytes: next.canonicalBytes) == next)
    }

    @Test func improperlySealedEntriesAreRefusedByThePureChecks() throws {
        let chain = try Chain(genesis: net.genesis)
        let good = cut(chain, [transfer(0, nonce: 0)])
        var cases: [(String, Block)] = []
        cases.append(("an outsider's seal", cut(chain, [transfer(0, nonce: 0)], by: net.keys[3])))
        var b = good
        b.signature = net.orderer.sign([1])
        cases.append(("a bad sealer signature", b))
        b = good
        b.header.previousHash = Hash256.of([2])
        b.signature = net.orderer.sign(b.header.hash.bytes)
        cases.append(("a wrong previous hash", b))
        b = good
        b.header.height = 2
        b.signature = net.orderer.sign(b.header.hash.bytes)
        cases.append(("the wrong height", b))
        b = good
        b.transactions = [transfer(1, nonce: 0)]
        cases.append(("transactions not matching the root", b))
        b = good
        b.header.ordered = false
        b.signature = net.orderer.sign(b.header.hash.bytes)
        cases.append(("a solo block", b))
        for (what, block) in cases {
            #expect(chain.refusal(of: block, sealers: sealers) != nil, "\(what)")
        }
        #expect(chain.refusal(of: good, sealers: sealers) == nil)
    }

    @Test func aForgedSignatureOrAnotherRootIsRefusedWithoutChangingTheChain() throws {
        var chain = try Chain(genesis: net.genesis)
        let before = chain.committedRoot
        var forged = transfer(0, nonce: 0)
        forged.signature = net.keys[1].sign([3])
        let bad = cut(chain, [forged])
        #expect(throws: PlexusError.self) { try chain.applyOrdered(block: bad) }
        var other = cut(chain, [transfer(0, nonce: 0)])
        other.header.stateRoot = Hash256.of([4])
        other.signature = net.orderer.sign(other.header.hash.bytes)
        do {
            _ = try chain.applyOrdered(block: other)
            Issue.record("a block claiming another root was applied")
        } catch let e as PlexusError {
            #expect(e.code == .stateMismatch)
        }
        #expect(chain.committedRoot == before && chain.state.height == 0)
    }

    @Test func theGenesisHashOfAChainWithoutSealersIsUnchanged() throws {
        var g = net.genesis
        let plain = g.hash
        g.sealers = []
        #expect(g.hash == plain)
        g.sealers = [net.orderer.address]
        #expect(g.hash != plain)
    }
}

/// The guarded append against a real etcd: of writers racing for one entry, exactly one wins.
@Suite(.serialized) struct EtcdAppendTests {
    static func key(_ n: Int) -> [UInt8] { LedgerReplica.blockKey(prefix: "t/", slot: UInt64(n)) }

    @Test(.enabled(if: EtcdCluster.binary() != nil, "needs etcd"))
    func racingAppendsLeaveOneChain() async throws {
        let dir = try TemporaryDirectory("plexus-etcd")
        defer { dir.remove() }
        let cluster = try EtcdCluster(size: 1, directory: dir.path)
        defer { cluster.stop() }
        try cluster.start()
        // Started beside the whole parallel suite on 2 cores, etcd can take longer than a network's 30 s.
        try await cluster.waitReady(timeout: .seconds(120))
        let etcd = EtcdClient(endpoints: cluster.clientURLs)
        #expect(try await etcd.create(Self.key(1), [1]) == .written(try await etcd.get(Self.key(1))!.modRevision))
        // Entry 3 cannot come before entry 2.
        #expect(try await etcd.create(Self.key(3), [3], after: Self.key(2)) == .missingPredecessor)
        let outcomes = await withTaskGroup(of: EtcdClient.Write?.self) { group in
            for w in 0..<8 { group.addTask { try? await etcd.create(Self.key(2), [UInt8(w)], after: Self.key(1)) } }
            var all: [EtcdClient.Write?] = []
            for await o in group { all.append(o) }
            return all
        }
        let won = outcomes.filter { if case .written = $0 { return true } else { return false } }
        #expect(won.count == 1)
        #expect(outcomes.filter { if case .taken = $0 { return true } else { return false } }.count == 7)
        // Too large for etcd's request limit: a clear error of its kind.
        do {
            try await etcd.put(Self.key(9), [UInt8](repeating: 0, count: 3 << 20))
            Issue.record("a 3 MiB value was accepted")
        } catch let e as EtcdClient.EtcdError {
            #expect(e.kind == .tooLarge, "\(e)")
        }
    }
}
