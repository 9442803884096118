import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Every market at once over random sequences: dataset registrations and citations, access
/// bought, delivered, claimed, refunded after timeouts; settlements quoted at moving spot
/// premiums (right, wrong and stale quotes) with royalties shared by provenance; agents'
/// grants, revocations, budgets and payments for calls. Total supply is conserved to the base
/// unit after every step, a refused transaction changes nothing, and a replay and a restart from
/// storage reach the same state root.
@Suite struct MarketsPropertyTests {
    let base = VerificationStateTests(params: ["dataDeliveryBlocks": 6, "premiumWindowMillis": 10_000, "slotTokensPerSecond": 1,
                                               "premiumPeriodMillis": 1_000, "quoteValidityBlocks": 30, "challengeWindowBlocks": 12])

    func everything(_ l: VerificationStateTests.Ledger) -> [String] {
        l.snapshot + [String(describing: l.state.datasets.sorted { $0.key < $1.key }), String(describing: l.state.grants.sorted { $0.key < $1.key }),
                      String(describing: l.state.provenance.sorted { $0.key < $1.key }), String(describing: l.state.spot.sorted { $0.key < $1.key }),
                      String(describing: l.state.spotCharges.sorted { $0.key < $1.key })]
    }

    @Test(arguments: [UInt64(41), 42, 43])
    func randomMarketSequencesConserveSupply(seed: UInt64) throws {
        let l = try base.network(royaltyBps: 1_500)
        var rng = SeededGenerator(seed: seed)
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        var time = l.state.timeMillis + 1_000
        var datasets: [Hash256] = [], grants: [(id: Hash256, buyer: Int, server: Int)] = [], requests: [Hash256] = []
        var accepted = 0, refused = 0
        var kinds: Set<String> = []
        for step in 0..<700 {
            if rng.next() % 3 == 0 { time += 200 + rng.next() % 1_500 }
            try l.chain.openEmptyBlock(nowMillis: time)
            let before = everything(l)
            var sender = 0
            let body: Transaction.Body
            switch rng.next() % 10 {
            case 0:
                sender = pick([0, 1])
                let name = pick(["a", "b"])
                var m = DatasetManifest(name: name, root: Hash256.of([UInt8(step & 0xff)]), size: 5_000, chunkSize: 2_048, chunks: 3, license: pick(["mit", "custom"]),
                                        price: Amount(units: pick([0, 7, 1_000_003])),
                                        contributors: (0..<(1 + Int(rng.next() % 3))).map { Contributor(account: l.address(7 + $0), weight: UInt32(1 + rng.next() % 5)) },
                                        totalWeight: 0)
                m.totalWeight = m.contributors.reduce(0) { $0 + UInt64($1.weight) } &+ (rng.next() % 6 == 0 ? 1 : 0)
                body = .registerDataset(m)
                datasets.append(DataMarket.datasetId(owner: l.address(sender), name: name,
                                                     version: (l.state.datasetVersions[DatasetName(owner: l.address(sender), name: name)] ?? 0) + 1))
            case 1:
                sender = pick([0, 0, 2])
                body = .citeDatasets(model: "m", datasets: Array(datasets.shuffled(using: &rng).prefix(Int(rng.next() % 3))))
            case 2:
                guard let d = datasets.randomElement(using: &rng) else { continue }
                sender = pick([5, 6])
                let server = pick([11, 10])
                grants.append((DataMarket.grantId(buyer: l.address(sender), nonce: l.nonces[sender] ?? 0), sender, server))
                body = .buyData(dataset: d, server: l.address(server))
            case 3:
                guard let g = grants.randomElement(using: &rng) else { continue }
                switch rng.next() % 3 {
                case 0:
                    sender = g.buyer
                    body = .confirmDelivery(grant: g.id)
                case 1:
                    sender = g.server
                    let root = l.state.grants[g.id].flatMap { l.state.datasets[$0.dataset]?.manifest.root } ?? .zero
                    body = .claimDelivery(grant: g.id, acknowledgement: l.net.keys[g.buyer].sign(DataMarket.deliveryBytes(chainId: base.chainId, grant: g.id, root: root)))
                default:
                    sender = 1
                    body = .refundData(grant: g.id)
                }
            case 4, 5:
                // A request settled at a quote: usually the premium in force a few blocks ago, sometimes wrong or missing.
                sender = 4
                let requestor = pick([5, 6, 3])
                let r = base.receipt("req-\(step)", requestor: requestor, node: Int(rng.next() % 2), output: 5 + rng.next() % 30, exact: false)
                let h = l.state.height - min(l.state.height, rng.next() % 40)
                let premium = l.state.spot["m"]?.premium(at: h) ?? 0
                switch rng.next() % 6 {
                case 0: body = .settle(receipts: [r])
                case 1: body = .settleQuoted(receipts: [r], quotes: [SpotQuote(requestId: r.requestId, premium: premium &+ 1, height: h)])
                default: body = .settleQuoted(receipts: [r], quotes: [SpotQuote(requestId: r.requestId, premium: premium, height: h)])
                }
                requests.append(r.requestId)
            case 6:
                // Agent 3 spends payer 5's escrow; payer 5 grants, changes or revokes.
                sender = 5
                if rng.next() % 4 == 0 {
                    body = .revokeAgent(agent: l.address(3))
                } else {
                    body = .grantAgent(agent: l.address(3), policy: AgentPolicy(budget: Amount(units: pick([50_000, 200_000, 10_000_000])),
                                                                                periodBlocks: pick([5, 50]), maxPerRequest: Amount(units: pick([40_000, 90_000])),
                                                                                models: pick([[], ["m"], ["x"]]), expiresHeight: pick([0, l.state.height + 15])))
                }
            case 7:
                guard let id = requests.randomElement(using: &rng) else { continue }
                sender = pick([3, 7, 8])
                body = .payForCall(to: l.state.settlements[id]?.requestor ?? l.address(6), amount: Amount(units: pick([1, 5_000, 60_000])), requestId: id)
            case 8:
                sender = 5
                body = .deposit(requestor: l.address(pick([5, 6])), amount: Amount(units: pick([10_000, VerificationStateTests.plx])))
            default:
                sender = 0
                body = .transfer(to: l.address(0), amount: Amount(units: 1))
            }
            let n = l.nonces[sender] ?? 0
            let tx = l.net.tx(sender, nonce: n, body)
            do {
                _ = try l.chain.submit(tx, hash: tx.hash, nowMillis: time)
                l.nonces[sender] = n + 1
                accepted += 1
                kinds.insert(tx.body.kind.name)
            } catch is PlexusError {
                refused += 1
                #expect(everything(l) == before, "\(tx.body.kind.name) was refused but changed the state")
            }
            if rng.next() % 2 == 0, let c = try l.chain.seal(signer: l.net.orderer) { l.commits.append(c) }
            #expect(try l.state.circulatingTotal() == l.state.totalSupply, "step \(step)")
        }
        #expect(accepted > 200 && refused > 50, "accepted \(accepted), refused \(refused)")
        #expect(kinds.isSuperset(of: ["register_dataset", "cite_datasets", "buy_data", "settle_quoted", "grant_agent", "pay_for_call"]), "\(kinds)")
        #expect(!l.state.spotCharges.isEmpty, "no request paid a premium")
        #expect(l.state.settlements.values.contains { l.state.agents[$0.requestor] != nil }, "no agent's request settled")
        #expect(l.state.settlements.values.contains { $0.payouts.count > $0.nodes.count + 1 }, "no royalty was shared by provenance")
        try l.replayAndRestart()
    }
}
