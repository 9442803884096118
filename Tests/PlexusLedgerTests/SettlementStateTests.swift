import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Nodes, model cards, gateways and settlement through the state machine.
@Suite struct SettlementStateTests {
    static let plx = Amount.unitsPerPLX
    // keys: 0 creator, 1 and 2 node owners, 3 gateway owner, 4 gateway key, 5... requestors
    let net = TestNetwork(accounts: 9, params: ["challengeWindowBlocks": 3, "verdictDeadlineBlocks": 2, "minNodeStake": 10 * plx, "protocolFeeBps": 500])
    let nodeKeys = [KeyPair.deterministic("node-a"), KeyPair.deterministic("node-b")]
    let weights = Hash256.of(Array("smollm2 weights".utf8))
    var chainId: String { net.genesis.chainId }

    final class Ledger {
        var chain: Chain
        var nonces: [Int: UInt64] = [:]
        let net: TestNetwork
        init(_ net: TestNetwork) throws {
            chain = try Chain(genesis: net.genesis)
            self.net = net
        }
        @discardableResult
        func send(_ i: Int, _ body: Transaction.Body, seal: Bool = true) throws -> [Event] {
            let n = nonces[i] ?? 0
            let tx = net.tx(i, nonce: n, body)
            let before = chain.state.height
            _ = try chain.submit(tx, hash: tx.hash, nowMillis: 2_000 + before)
            nonces[i] = n + 1
            let events = chain.open?.events.filter { $0.txIndex == UInt32((chain.open?.transactions.count ?? 1) - 1) }.map(\.event) ?? []
            if seal { _ = try chain.seal(signer: net.orderer) }
            return events
        }
        func seal() throws {
            // An empty block: a fee-paying no-op transfer to advance the height.
            try send(0, .transfer(to: net.keys[0].address, amount: Amount(units: 1)))
        }
        var state: LedgerState { chain.state }
    }

    func card(_ id: String = "smollm2-135m", royalty: UInt16 = 1_000) -> ModelCard {
        ModelCard(id: id, weightsHash: weights, architecture: "llama", quantization: "Q4_1", contextLength: 8192,
                  license: "apache-2.0", capabilities: ["chat"], creator: net.keys[0].address, royaltyBps: royalty)
    }

    func offer(_ priceIn: UInt64 = 1_000_000, _ priceOut: UInt64 = 2_000_000) -> Offer {
        Offer(model: "smollm2-135m", priceIn: Amount(units: priceIn), priceOut: Amount(units: priceOut))
    }

    /// A ledger with the model, two staked nodes and a gateway, and escrow for the requestors.
    func network() throws -> Ledger {
        let l = try Ledger(net)
        try l.send(0, .registerModel(card()))
        for (i, owner) in [1, 2].enumerated() {
            try l.send(owner, .stake(amount: Amount(units: 20 * Self.plx)))
            let proof = nodeKeys[i].sign(Registry.nodeKeyProofBytes(chainId: chainId, owner: net.keys[owner].address))
            try l.send(owner, .registerNode(nodeKey: nodeKeys[i].address, keyProof: proof, endpoint: "http://127.0.0.1:\(9000 + i)",
                                            offers: [offer(UInt64(1_000_000 * (i + 1)), UInt64(2_000_000 * (i + 1)))]))
        }
        let gk = net.keys[4]
        try l.send(3, .registerGateway(key: gk.address, keyProof: gk.sign(Registry.gatewayKeyProofBytes(chainId: chainId, owner: net.keys[3].address))))
        for r in 5..<9 { try l.send(r, .deposit(requestor: net.keys[r].address, amount: Amount(units: 100 * Self.plx))) }
        return l
    }

    func receipt(_ id: String, requestor: Int, node: Int, input: UInt64, output: UInt64, first: UInt64 = 0, priceIn: UInt64? = nil, priceOut: UInt64? = nil) -> Receipt {
        var r = Receipt(requestId: Hash256.of(Array(id.utf8)), requestHash: Hash256.of(Array("body \(id)".utf8)),
                        requestor: net.keys[requestor].address, node: nodeKeys[node].address, modelHash: weights,
                        inputTokens: input, outputTokens: output, firstOutputToken: first,
                        priceIn: Amount(units: priceIn ?? UInt64(1_000_000 * (node + 1))),
                        priceOut: Amount(units: priceOut ?? UInt64(2_000_000 * (node + 1))),
                        outputHash: Hash256.of(Array("out \(id)".utf8)), timeMillis: 1)
        r.signAsNode(nodeKeys[node], chainId: chainId)
        r.countersign(net.keys[4], chainId: chainId)
        return r
    }

    @Test func registrationsCheckStakeProofsAndModels() throws {
        let l = try Ledger(net)
        let owner = net.keys[1].address
        let proof = nodeKeys[0].sign(Registry.nodeKeyProofBytes(chainId: chainId, owner: owner))
        let register = Transaction.Body.registerNode(nodeKey: nodeKeys[0].address, keyProof: proof, endpoint: "http://127.0.0.1:9000", offers: [offer()])
        // Unknown model.
        try l.send(1, .stake(amount: Amount(units: 20 * Self.plx)))
        #expect(throws: PlexusError.self) { try l.send(1, register) }
        try l.send(0, .registerModel(card()))
        #expect(throws: PlexusError.self) { try l.send(0, .registerModel(card())) }  // twice
        #expect(throws: PlexusError.self) { try l.send(0, .registerModel(card("bad id!"))) }
        #expect(throws: PlexusError.self) { try l.send(1, .registerModel(card("other"))) }  // creator must be the sender
        // Too little stake, a proof for another owner, a bad endpoint.
        #expect(throws: PlexusError.self) { try l.send(2, register) }
        let wrongProof = nodeKeys[0].sign(Registry.nodeKeyProofBytes(chainId: chainId, owner: net.keys[2].address))
        #expect(throws: PlexusError.self) {
            try l.send(1, .registerNode(nodeKey: nodeKeys[0].address, keyProof: wrongProof, endpoint: "http://x", offers: [offer()]))
        }
        #expect(throws: PlexusError.self) {
            try l.send(1, .registerNode(nodeKey: nodeKeys[0].address, keyProof: proof, endpoint: "ftp://x", offers: [offer()]))
        }
        let before = l.state.account(owner)
        #expect(l.state.nodes.isEmpty && before.nonce == 1)
        try l.send(1, register)
        #expect(l.state.nodes[owner]?.nodeKey == nodeKeys[0].address)
        // The same key cannot be bound twice; the node's stake cannot drop below the minimum.
        #expect(throws: PlexusError.self) { try l.send(1, register) }
        #expect(throws: PlexusError.self) { try l.send(1, .unstake(amount: Amount(units: 11 * Self.plx))) }
        try l.send(1, .unstake(amount: Amount(units: 10 * Self.plx)))
        try l.send(1, .updateNode(endpoint: "https://node.example", offers: [offer(5, 6)]))
        #expect(l.state.nodes[owner]?.offers.first?.priceOut == Amount(units: 6))
        try l.send(1, .deregisterNode)
        #expect(l.state.nodes.isEmpty)
        #expect(throws: PlexusError.self) { try l.send(1, .deregisterNode) }
        // A non-gateway cannot settle.
        #expect(throws: PlexusError.self) { try l.send(5, .settle(receipts: [receipt("x", requestor: 5, node: 0, input: 1, output: 1)])) }
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    /// A shard offer (a layer range) registers, travels in its own transaction kind and
    /// record layout, and reads back; whole-model offers keep the layouts they had.
    @Test func shardOffersRegisterAndReadBack() throws {
        let l = try Ledger(net)
        try l.send(0, .registerModel(card()))
        try l.send(1, .stake(amount: Amount(units: 20 * Self.plx)))
        let owner = net.keys[1].address
        let proof = nodeKeys[0].sign(Registry.nodeKeyProofBytes(chainId: chainId, owner: owner))
        var shard = offer()
        for bad in [LayerSpan(start: 3, end: 3, total: 30), LayerSpan(start: 0, end: 31, total: 30), LayerSpan(start: 0, end: 30, total: 30)] {
            shard.layers = bad
            #expect(throws: PlexusError.self) { try l.send(1, .registerNode(nodeKey: nodeKeys[0].address, keyProof: proof, endpoint: "http://127.0.0.1:9000", offers: [shard])) }
        }
        shard.layers = LayerSpan(start: 0, end: 15, total: 30)
        let body = Transaction.Body.registerNode(nodeKey: nodeKeys[0].address, keyProof: proof, endpoint: "http://127.0.0.1:9000", offers: [shard])
        #expect(body.kind == .registerNodeLayered)
        let tx = net.tx(1, nonce: 9, body)
        #expect(try Transaction(canonicalBytes: tx.canonicalBytes) == tx)
        #expect(try JSONDecoder().decode(Transaction.self, from: JSONEncoder().encode(tx)) == tx)
        try l.send(1, body)
        let record = try #require(l.state.nodes[owner])
        #expect(record.offers.first?.layers == shard.layers)
        #expect(try NodeRecord(canonicalBytes: record.canonicalBytes) == record)
        // Back to a whole model: the plain kinds and layout, byte for byte as before.
        let whole = Transaction.Body.updateNode(endpoint: "http://127.0.0.1:9000", offers: [offer()])
        #expect(whole.kind == .updateNode)
        try l.send(1, whole)
        let plain = try #require(l.state.nodes[owner])
        #expect(plain.offers.first?.layers == nil)
        var w = CanonicalWriter()
        w.write(plain.owner); w.write(plain.nodeKey); w.write(plain.endpoint); w.write(array: plain.offers); w.write(plain.registeredHeight)
        #expect(plain.canonicalBytes == w.bytes)
        // A layered kind must carry a shard offer (one canonical form).
        var forged = CanonicalWriter()
        forged.write(plain.endpoint); forged.write(array: plain.offers); LayerSpan.write(plain.offers, to: &forged)
        var r = CanonicalReader(forged.bytes)
        _ = try r.readString(limit: 512)
        var offers = try r.readArray(of: Offer.self, limit: 16)
        #expect(throws: PlexusError.self) { try Transaction.readLayers(into: &offers, from: &r) }
    }

    @Test func aFailedOverRequestPaysBothNodesOnceAfterTheWindow() throws {
        let l = try network()
        let requestor = net.keys[5].address
        let escrow0 = l.state.account(requestor).escrow
        let owners = [net.keys[1].address, net.keys[2].address]
        let balances0 = owners.map { l.state.account($0).balance }
        let creator0 = l.state.account(net.keys[0].address).balance
        let treasury0 = l.state.treasury
        // Node A served 40 prompt tokens and 10 output tokens, then died; node B
        // re-read the 50 tokens and produced 22 more.
        let a = receipt("req-1", requestor: 5, node: 0, input: 40, output: 10)
        let b = receipt("req-1", requestor: 5, node: 1, input: 50, output: 22, first: 10)
        let events = try l.send(4, .settle(receipts: [a, b]))
        guard case let .settlementPending(_, _, charge, finalHeight)? = events.last else {
            Issue.record("expected a pending settlement, got \(events)")
            return
        }
        let costA = try a.cost(), costB = try b.cost()
        #expect(charge.units == costA.units + costB.units)
        #expect(l.state.account(requestor).escrow.units == escrow0.units - charge.units)
        let s = try #require(l.state.settlements[a.requestId])
        #expect(s.status == .pending && s.nodes == [nodeKeys[0].address, nodeKeys[1].address] && s.outputTokens == [10, 22])
        // Settling the same request again (a gateway restart resubmitting) moves nothing.
        let again = try l.send(4, .settle(receipts: [a, b]))
        #expect(again.contains { if case .settlementRejected = $0 { true } else { false } })
        #expect(l.state.account(requestor).escrow.units == escrow0.units - charge.units)
        while l.state.height < finalHeight { try l.seal() }
        let f = try #require(l.state.settlements[a.requestId])
        #expect(f.status == .final)
        let splitA = try Pricing.split(costA, feeBps: 500, royaltyBps: 1_000)
        let splitB = try Pricing.split(costB, feeBps: 500, royaltyBps: 1_000)
        #expect(l.state.account(owners[0]).balance.units == balances0[0].units + splitA.node.units)
        #expect(l.state.account(owners[1]).balance.units == balances0[1].units + splitB.node.units)
        // The creator sent fee-paying transfers to itself meanwhile (the seals).
        let creatorFees = (l.nonces[0] ?? 0) - 1
        #expect(l.state.account(net.keys[0].address).balance.units == creator0.units + splitA.royalty.units + splitB.royalty.units - creatorFees * 1_000)
        #expect(l.state.treasury.units - treasury0.units == splitA.fee.units + splitB.fee.units + (2 + creatorFees) * 1_000)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func badReceiptsAreRefusedOneByOne() throws {
        let l = try network()
        var tampered = receipt("t", requestor: 5, node: 0, input: 5, output: 5)
        tampered.outputTokens = 500
        var otherGateway = receipt("g", requestor: 5, node: 0, input: 5, output: 5)
        otherGateway.countersign(net.keys[3], chainId: chainId)
        let cases: [[Receipt]] = [
            [tampered],
            [otherGateway],
            [receipt("p", requestor: 5, node: 0, input: 5, output: 5, priceOut: 9_000_000)],  // above the offer
            [receipt("e", requestor: 5, node: 0, input: 100_000_000_000, output: 100_000_000_000)],  // beyond the escrow
            [receipt("gap", requestor: 5, node: 0, input: 5, output: 5), receipt("gap", requestor: 5, node: 1, input: 5, output: 5, first: 6)],
            [receipt("mix", requestor: 5, node: 0, input: 5, output: 5), receipt("mix", requestor: 6, node: 1, input: 5, output: 5, first: 5)],
            [receipt("zero", requestor: 5, node: 0, input: 0, output: 0)],
        ]
        let good = receipt("good", requestor: 6, node: 1, input: 7, output: 9)
        let escrow5 = l.state.account(net.keys[5].address).escrow
        let events = try l.send(4, .settle(receipts: cases.flatMap { $0 } + [good]))
        let rejected = events.filter { if case .settlementRejected = $0 { true } else { false } }
        #expect(rejected.count == cases.count, "\(events)")
        #expect(l.state.account(net.keys[5].address).escrow == escrow5)
        #expect(l.state.settlements.count == 1 && l.state.settlements[good.requestId] != nil)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    /// Random requests, failures and blocks: supply is conserved at every step,
    /// and once everything is final, escrow debits = node payouts + fees + royalties.
    @Test(arguments: [UInt64(1), 2, 3])
    func moneyBalancesOverRandomSettlements(seed: UInt64) throws {
        let l = try network()
        var rng = SeededGenerator(seed: seed)
        let requestors = 5..<9
        let owners = [net.keys[1].address, net.keys[2].address]
        let creator = net.keys[0].address
        let start = Dictionary(uniqueKeysWithValues: (0..<9).map { (net.keys[$0].address, l.state.account(net.keys[$0].address)) })
        let treasury0 = l.state.treasury
        var sent: [Receipt] = []
        var settled = 0, refused = 0
        for step in 0..<60 {
            var batch: [Receipt] = []
            for k in 0..<Int(rng.next() % 6) {
                let id = "s\(seed)-\(step)-\(k)"
                let who = requestors.lowerBound + Int(rng.next() % 4)
                let first = receipt(id, requestor: who, node: Int(rng.next() % 2), input: rng.next() % 3_000, output: rng.next() % 500)
                switch rng.next() % 10 {
                case 0 where !sent.isEmpty: batch.append(sent[Int(rng.next() % UInt64(sent.count))])  // replay
                case 1: batch.append(receipt(id, requestor: who, node: 0, input: 1, output: 1, priceIn: 99_000_000))  // over price
                case 2:  // failover
                    let second = receipt(id, requestor: who, node: 1, input: first.inputTokens + first.outputTokens,
                                         output: rng.next() % 300, first: first.outputTokens)
                    batch += [first, second]
                default: batch.append(first)
                }
            }
            if !batch.isEmpty {
                let events = try l.send(4, .settle(receipts: batch))
                for e in events {
                    if case .settlementPending = e { settled += 1 }
                    if case .settlementRejected = e { refused += 1 }
                }
                sent += batch
            }
            if rng.next() % 3 == 0 { try l.seal() }
            #expect(try l.state.circulatingTotal() == l.state.totalSupply)
        }
        for _ in 0..<4 { try l.seal() }
        #expect(l.state.settlements.values.allSatisfy { $0.status == .final })
        #expect(settled > 50 && refused > 10, "settled \(settled), refused \(refused)")
        // Escrow debits equal node payouts + protocol fees + royalties, to the unit.
        var debits: UInt64 = 0
        for r in requestors {
            let a = net.keys[r].address
            debits += start[a]!.escrow.units - l.state.account(a).escrow.units
        }
        var payouts: UInt64 = 0
        for o in owners { payouts += l.state.account(o).balance.units - start[o]!.balance.units }
        let creatorFees = ((l.nonces[0] ?? 0) - (start[creator]!.nonce)) * 1_000
        let royalties = l.state.account(creator).balance.units + creatorFees - start[creator]!.balance.units
        let txFees = (l.nonces[4]! - start[net.keys[4].address]!.nonce) * 1_000 + creatorFees
        let protocolFees = l.state.treasury.units - treasury0.units - txFees
        #expect(debits == payouts + protocolFees + royalties)
        #expect(debits == l.state.settlements.values.reduce(0) { $0 + $1.charge.units })
    }

    @Test func registriesAndSettlementsSurviveARestart() throws {
        let dir = try TemporaryDirectory("plexus-settle")
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/ledger.sqlite")
        try store.initialize(genesis: net.genesis)
        let l = try Ledger(net)
        var commits: [BlockStore.Commit] = []
        // Record every sealed block by replaying the same sends through a chain that returns commits.
        var chain = try Chain(genesis: net.genesis)
        func send(_ i: Int, _ body: Transaction.Body) throws {
            let n = l.nonces[i] ?? 0
            l.nonces[i] = n + 1
            let tx = net.tx(i, nonce: n, body)
            _ = try chain.submit(tx, hash: tx.hash, nowMillis: 2_000)
            if let c = try chain.seal(signer: net.orderer) { commits.append(c) }
        }
        try send(0, .registerModel(card()))
        try send(1, .stake(amount: Amount(units: 20 * Self.plx)))
        try send(1, .registerNode(nodeKey: nodeKeys[0].address, keyProof: nodeKeys[0].sign(Registry.nodeKeyProofBytes(chainId: chainId, owner: net.keys[1].address)),
                                  endpoint: "http://127.0.0.1:9000", offers: [offer()]))
        let gk = net.keys[4]
        try send(3, .registerGateway(key: gk.address, keyProof: gk.sign(Registry.gatewayKeyProofBytes(chainId: chainId, owner: net.keys[3].address))))
        try send(5, .deposit(requestor: net.keys[5].address, amount: Amount(units: 10 * Self.plx)))
        try send(4, .settle(receipts: [receipt("r1", requestor: 5, node: 0, input: 100, output: 50)]))
        try send(2, .transfer(to: net.keys[2].address, amount: Amount(units: 1)))
        for c in commits { try store.commit(c) }
        let root = chain.stateRoot()
        var loaded = try store.load().state
        #expect(loaded.commit().root == root)
        #expect(loaded.nodes.count == 1 && loaded.models.count == 1 && loaded.gateways.count == 1 && loaded.settlements.count == 1)
        // Deregistering removes the record from storage too.
        try send(1, .deregisterNode)
        try store.commit(commits.last!)
        var again = try store.load().state
        #expect(again.nodes.isEmpty)
        #expect(again.commit().root == chain.stateRoot())
    }
}

@Suite struct RegistryCodingTests {
    @Test func newKindsRoundTripThroughCanonicalBytesAndJSON() throws {
        let net = TestNetwork(accounts: 1)
        let k = KeyPair.deterministic("node")
        let card = ModelCard(id: "m", weightsHash: Hash256.of([1]), architecture: "llama", quantization: "Q4_1", contextLength: 8192,
                             license: "apache-2.0", capabilities: ["chat", "completion"], creator: net.keys[0].address, royaltyBps: 250)
        var r = Receipt(requestId: Hash256.of([2]), requestHash: Hash256.of([3]), requestor: net.keys[0].address, node: k.address,
                        modelHash: Hash256.of([1]), inputTokens: 3, outputTokens: 4, priceIn: Amount(units: 5), priceOut: Amount(units: 6),
                        outputHash: Hash256.of([4]), timeMillis: 7)
        r.signAsNode(k, chainId: net.genesis.chainId)
        r.countersign(k, chainId: net.genesis.chainId)
        let bodies: [Transaction.Body] = [
            .registerNode(nodeKey: k.address, keyProof: k.sign([1]), endpoint: "http://127.0.0.1:1",
                          offers: [Offer(model: "m", priceIn: Amount(units: 1), priceOut: Amount(units: 2))]),
            .updateNode(endpoint: "https://x", offers: []),
            .deregisterNode,
            .registerModel(card),
            .registerGateway(key: k.address, keyProof: k.sign([2])),
            .settle(receipts: [r, r]),
        ]
        for body in bodies {
            let tx = net.tx(0, nonce: 3, body)
            let bytes = tx.canonicalBytes
            #expect(try Transaction(canonicalBytes: bytes) == tx)
            let json = try JSONEncoder().encode(tx)
            #expect(try JSONDecoder().decode(Transaction.self, from: json) == tx, "\(String(decoding: json, as: UTF8.self))")
            #expect(tx.hasValidSignature)
            for n in stride(from: 0, to: bytes.count, by: 5) {
                #expect(throws: PlexusError.self) { try Transaction(canonicalBytes: Array(bytes[0..<n])) }
            }
        }
    }
}
