import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// The data market on the ledger: datasets registered with their root and contributors; access
/// bought with the price held; paid to the contributors by weight on delivery (confirmed by the
/// buyer or shown by the server with the buyer's signature); refunded after the deadline; every
/// hostile record refused with nothing changed; supply conserved over random sequences.
@Suite struct DataMarketStateTests {
    let base = VerificationStateTests(params: ["dataDeliveryBlocks": 5])
    static let root = Hash256.of(Array("chunks".utf8))

    func manifest(_ l: VerificationStateTests.Ledger, name: String = "corpus", price: UInt64 = 1_000_003,
                  weights: [(Int, UInt32)] = [(7, 3), (8, 2), (9, 1)]) -> DatasetManifest {
        DatasetManifest(name: name, root: Self.root, size: 10_000, chunkSize: 4_096, chunks: 3, license: "cc-by-4.0", price: Amount(units: price),
                        contributors: weights.map { Contributor(account: l.address($0.0), weight: $0.1) },
                        totalWeight: weights.reduce(0) { $0 + UInt64($1.1) })
    }

    /// A contributor's weight from the chunks it added: files end to end, a chunk across a
    /// boundary counted for both, an empty file for none.
    @Test func weightsFromTheChunksEachFileFills() {
        #expect(DataMarket.chunksPerFile(sizes: [100, 100], chunkSize: 100) == [1, 1])
        #expect(DataMarket.chunksPerFile(sizes: [150, 100], chunkSize: 100) == [2, 2])
        #expect(DataMarket.chunksPerFile(sizes: [0, 250, 0, 1], chunkSize: 100) == [0, 3, 0, 1])
        #expect(DataMarket.chunksPerFile(sizes: [99, 1, 100], chunkSize: 100) == [1, 1, 1])
        #expect(DataMarket.chunksPerFile(sizes: [5], chunkSize: 0) == [0])
        // Summed over files, at least the dataset's chunks (each counted once per file it holds).
        for sizes in [[1_000, 3, 70_000], [65_536, 65_536], [1], [200_000, 0, 17]] as [[UInt64]] {
            let per = DataMarket.chunksPerFile(sizes: sizes, chunkSize: 65_536)
            let total = DataMarket.chunkHashes([UInt8](repeating: 0, count: Int(sizes.reduce(0, +))), chunkSize: 65_536).count
            #expect(per.reduce(0, +) >= UInt32(total) && per.reduce(0, +) <= UInt32(total + sizes.count - 1), "\(sizes)")
        }
    }

    @Test func theSplitIsExactAndItsRemainderGoesInOrder() {
        let c = [Contributor(account: KeyPair.deterministic("a").address, weight: 3), Contributor(account: KeyPair.deterministic("b").address, weight: 2),
                 Contributor(account: KeyPair.deterministic("c").address, weight: 1)]
        // 1,000,003 · 3/6 = 500,001.5 → 500,001; · 2/6 = 333,334.33 → 333,334; · 1/6 = 166,667.17 → 166,667; one unit left, to the first.
        #expect(DataMarket.split(Amount(units: 1_000_003), c).map(\.amount.units) == [500_002, 333_334, 166_667])
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<2_000 {
            let n = 1 + Int(rng.next() % 32)
            let cs = (0..<n).map { Contributor(account: KeyPair.deterministic("k\($0)").address, weight: UInt32(1 + rng.next() % 1_000)) }
            let amount = Amount(units: [0, 1, 7, rng.next() % 1_000_000_000, UInt64.max / 2][Int(rng.next() % 5)])
            let parts = DataMarket.split(amount, cs)
            #expect(parts.reduce(UInt64(0)) { $0 + $1.amount.units } == amount.units)
        }
    }

    @Test func aPurchaseIsPaidToTheContributorsOnDelivery() throws {
        let l = try base.network()
        try l.send(0, .registerDataset(manifest(l)))
        let id = DataMarket.datasetId(owner: l.address(0), name: "corpus", version: 1)
        #expect(l.state.datasets[id]?.version == 1)
        let before = [7, 8, 9].map { l.state.account(l.address($0)).balance.units }
        let buyer0 = l.state.account(l.address(5)).balance.units
        let nonce = l.nonces[5] ?? 0
        try l.send(5, .buyData(dataset: id, server: l.address(11)))
        let grant = DataMarket.grantId(buyer: l.address(5), nonce: nonce)
        #expect(l.state.grants[grant]?.status == .open && l.state.account(l.address(5)).balance.units == buyer0 - 1_000_003 - 1_000)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
        // Only the buyer confirms; then each contributor has its share exactly.
        try l.refuse(11, .confirmDelivery(grant: grant))
        try l.send(5, .confirmDelivery(grant: grant))
        #expect(l.state.grants[grant]?.status == .delivered)
        #expect(zip([7, 8, 9], before).map { l.state.account(l.address($0.0)).balance.units - $0.1 } == [500_002, 333_334, 166_667])
        try l.refuse(5, .confirmDelivery(grant: grant))
        try l.refuse(5, .refundData(grant: grant))
        // A new version of the same name is a dataset of its own.
        try l.send(0, .registerDataset(manifest(l)))
        #expect(l.state.datasets[DataMarket.datasetId(owner: l.address(0), name: "corpus", version: 2)] != nil)
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func theServerClaimsWithTheBuyersAcknowledgementOrTheBuyerIsRefunded() throws {
        let l = try base.network()
        try l.send(0, .registerDataset(manifest(l)))
        let id = DataMarket.datasetId(owner: l.address(0), name: "corpus", version: 1)
        func buy() throws -> Hash256 {
            let nonce = l.nonces[6] ?? 0
            try l.send(6, .buyData(dataset: id, server: l.address(11)))
            return DataMarket.grantId(buyer: l.address(6), nonce: nonce)
        }
        let g1 = try buy()
        let good = l.net.keys[6].sign(DataMarket.deliveryBytes(chainId: base.chainId, grant: g1, root: Self.root))
        // Signed over another root, by another key, or shown by someone other than the server: refused.
        try l.refuse(11, .claimDelivery(grant: g1, acknowledgement: l.net.keys[6].sign(DataMarket.deliveryBytes(chainId: base.chainId, grant: g1, root: .zero))))
        try l.refuse(11, .claimDelivery(grant: g1, acknowledgement: l.net.keys[5].sign(DataMarket.deliveryBytes(chainId: base.chainId, grant: g1, root: Self.root))))
        try l.refuse(10, .claimDelivery(grant: g1, acknowledgement: good))
        try l.send(11, .claimDelivery(grant: g1, acknowledgement: good))
        #expect(l.state.grants[g1]?.status == .delivered)
        // Not delivered: no refund before the deadline, then the whole price back; contributors unpaid.
        let g2 = try buy()
        let buyer = l.state.account(l.address(6)).balance.units, c7 = l.state.account(l.address(7)).balance.units
        try l.refuse(1, .refundData(grant: g2))
        try l.tick(until: l.state.grants[g2]!.deadline)
        try l.send(1, .refundData(grant: g2))
        #expect(l.state.grants[g2]?.status == .refunded)
        #expect(l.state.account(l.address(6)).balance.units == buyer + 1_000_003)
        #expect(l.state.account(l.address(7)).balance.units == c7)
        try l.refuse(11, .claimDelivery(grant: g2, acknowledgement: l.net.keys[6].sign(DataMarket.deliveryBytes(chainId: base.chainId, grant: g2, root: Self.root))))
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func hostileDatasetsAndGrantsAreRefusedAndChangeNothing() throws {
        let l = try base.network()
        func with(_ change: (inout DatasetManifest) -> Void) -> Transaction.Body {
            var m = manifest(l)
            change(&m)
            return .registerDataset(m)
        }
        try l.refuse(0, with { $0.totalWeight = 7 })                     // weights that do not sum as stated
        try l.refuse(0, with { $0.contributors[0].weight = 0; $0.totalWeight = 3 })
        try l.refuse(0, with { $0.contributors[1].account = $0.contributors[0].account })
        try l.refuse(0, with { $0.contributors = (0..<33).map { Contributor(account: KeyPair.deterministic("c\($0)").address, weight: 1) }; $0.totalWeight = 33 })
        try l.refuse(0, with { $0.contributors = []; $0.totalWeight = 0 })
        try l.refuse(0, with { $0.chunks = 4 })                           // 10,000 bytes in 4 KiB chunks are 3
        try l.refuse(0, with { $0.chunkSize = 512; $0.chunks = 20 })
        try l.refuse(0, with { $0.size = 0 })
        try l.refuse(0, with { $0.name = "" })
        try l.refuse(0, with { $0.name = "bad name!" })
        try l.refuse(0, with { $0.license = "" })
        try l.refuse(0, with { $0.derivedFrom = Hash256.of([1]) })
        try l.refuse(0, with { $0.contributors[2].account = .treasury })
        try l.refuse(5, .buyData(dataset: Hash256.of([2]), server: l.address(11)))
        try l.send(0, .registerDataset(manifest(l)))
        let id = DataMarket.datasetId(owner: l.address(0), name: "corpus", version: 1)
        try l.refuse(5, .buyData(dataset: id, server: l.address(5)))
        try l.refuse(5, .buyData(dataset: id, server: .treasury))
        try l.refuse(5, .confirmDelivery(grant: Hash256.of([3])))
        try l.refuse(5, .refundData(grant: Hash256.of([3])))
        #expect(l.state.datasets.count == 1 && l.state.grants.isEmpty)
    }

    @Test(arguments: [UInt64(31), 32])
    func randomMarketSequencesConserveSupply(seed: UInt64) throws {
        let l = try base.network()
        var rng = SeededGenerator(seed: seed)
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        var datasets: [Hash256] = [], grants: [(id: Hash256, buyer: Int, server: Int)] = []
        var accepted = 0, refused = 0
        for step in 0..<600 {
            try l.chain.openEmptyBlock(nowMillis: 2_000 + l.state.height)
            let before = l.snapshot + [String(describing: l.state.datasets.sorted { $0.key < $1.key }), String(describing: l.state.grants.sorted { $0.key < $1.key })]
            let sender: Int, body: Transaction.Body
            switch rng.next() % 6 {
            case 0:
                sender = pick([0, 1, 2])
                var m = manifest(l, name: pick(["a", "b"]), price: pick([0, 1, 999, 1_000_003, UInt64.max]),
                                 weights: (0..<(1 + Int(rng.next() % 4))).map { (7 + $0, UInt32(1 + rng.next() % 9)) })
                if rng.next() % 5 == 0 { m.totalWeight &+= 1 }
                body = .registerDataset(m)
                datasets.append(DataMarket.datasetId(owner: l.address(sender), name: m.name, version: (l.state.datasetVersions[DatasetName(owner: l.address(sender), name: m.name)] ?? 0) + 1))
            case 1, 2:
                guard let d = datasets.randomElement(using: &rng) else { continue }
                sender = pick([5, 6, 3])
                let server = pick([11, 10, sender])
                grants.append((DataMarket.grantId(buyer: l.address(sender), nonce: l.nonces[sender] ?? 0), sender, server))
                body = .buyData(dataset: d, server: l.address(server))
            case 3:
                guard let g = grants.randomElement(using: &rng) else { continue }
                sender = rng.next() % 5 == 0 ? g.server : g.buyer
                body = .confirmDelivery(grant: g.id)
            case 4:
                guard let g = grants.randomElement(using: &rng) else { continue }
                let root = l.state.grants[g.id].flatMap { l.state.datasets[$0.dataset]?.manifest.root } ?? .zero
                sender = g.server
                body = .claimDelivery(grant: g.id, acknowledgement: l.net.keys[rng.next() % 4 == 0 ? g.server : g.buyer]
                                        .sign(DataMarket.deliveryBytes(chainId: base.chainId, grant: g.id, root: root)))
            default:
                guard let g = grants.randomElement(using: &rng) else { continue }
                sender = pick([1, g.buyer])
                body = .refundData(grant: g.id)
            }
            let n = l.nonces[sender] ?? 0
            let tx = l.net.tx(sender, nonce: n, body)
            do {
                _ = try l.chain.submit(tx, hash: tx.hash, nowMillis: 2_000 + l.state.height)
                l.nonces[sender] = n + 1
                accepted += 1
            } catch is PlexusError {
                refused += 1
                let after = l.snapshot + [String(describing: l.state.datasets.sorted { $0.key < $1.key }), String(describing: l.state.grants.sorted { $0.key < $1.key })]
                #expect(after == before, "\(tx.body.kind.name) was refused but changed the state")
            }
            if rng.next() % 3 == 0, let c = try l.chain.seal(signer: l.net.orderer) { l.commits.append(c) }
            #expect(try l.state.circulatingTotal() == l.state.totalSupply, "step \(step)")
        }
        #expect(accepted > 100 && refused > 50, "accepted \(accepted), refused \(refused)")
        #expect(Set(l.state.grants.values.map(\.status)).count == 3, "grant outcomes reached: \(Set(l.state.grants.values.map(\.status)))")
        // A replica replaying the blocks, and one loaded from storage, reach the same root.
        let loaded = try l.replayAndRestart()
        #expect(loaded.datasetVersions == l.state.datasetVersions)
    }
}

extension DataMarketStateTests {
    /// Provenance: a model's card cites datasets; a governed share of its royalty goes to their
    /// contributors at settlement, split by weight, the creator keeping the rest.
    @Test func aCitedDatasetsContributorsShareTheModelsRoyalty() throws {
        let l = try base.network(royaltyBps: 1_000)
        try l.send(0, .registerDataset(manifest(l, name: "d1", weights: [(7, 3), (8, 1)])))
        try l.send(0, .registerDataset(manifest(l, name: "d2", weights: [(9, 1)])))
        let d1 = DataMarket.datasetId(owner: l.address(0), name: "d1", version: 1), d2 = DataMarket.datasetId(owner: l.address(0), name: "d2", version: 1)
        try l.refuse(1, .citeDatasets(model: "m", datasets: [d1]))                   // not the creator
        try l.refuse(0, .citeDatasets(model: "m", datasets: [Hash256.of([1])]))      // unknown dataset
        try l.refuse(0, .citeDatasets(model: "m", datasets: [d1, d1]))
        try l.refuse(0, .citeDatasets(model: "m", datasets: [d1, d2, Hash256.of([2]), Hash256.of([3]), Hash256.of([4])]))
        try l.refuse(0, .citeDatasets(model: "no-such-model", datasets: [d1]))
        try l.send(0, .citeDatasets(model: "m", datasets: [d1, d2]))
        #expect(l.state.provenance["m"] == [d1, d2])
        // A request of 40,000 units: royalty 10 % = 4,000; 20 % of it (800) to the datasets, 400 each: d1 3 : 1, d2 all to 9.
        let r = base.receipt("cited", output: 10, exact: false)
        try l.send(4, .settle(receipts: [r]))
        let s = try #require(l.state.settlements[r.requestId])
        let royalty = s.payouts.dropFirst(s.nodes.count).map { ($0.account, $0.amount.units) }
        #expect(royalty.map(\.0) == [l.address(7), l.address(8), l.address(9), l.address(0)])
        #expect(royalty.map(\.1) == [300, 100, 400, 3_200])
        #expect(s.payouts.reduce(0) { $0 + $1.amount.units } + s.fee.units == s.charge.units)
        let before = [7, 8, 9].map { l.state.account(l.address($0)).balance.units }
        try l.tick(until: s.finalHeight)
        #expect(zip([7, 8, 9], before).map { l.state.account(l.address($0.0)).balance.units - $0.1 } == [300, 100, 400])
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
        // Uncited: the creator has the whole royalty again.
        try l.send(0, .citeDatasets(model: "m", datasets: []))
        let r2 = base.receipt("uncited", output: 10, exact: false)
        try l.send(4, .settle(receipts: [r2]))
        #expect(l.state.settlements[r2.requestId]?.payouts.dropFirst(1).map(\.amount.units) == [4_000])
    }
}
