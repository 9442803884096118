import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct TransactionCodingTests {
    let net = TestNetwork(accounts: 2)

    var samples: [Transaction] {
        let b = net.keys[1].address
        return [
            net.tx(0, nonce: 0, .transfer(to: b, amount: Amount(units: 7))),
            net.tx(0, nonce: 1, .stake(amount: Amount(units: 8))),
            net.tx(0, nonce: 2, .unstake(amount: Amount(units: 9))),
            net.tx(0, nonce: 3, .deposit(requestor: b, amount: Amount(units: 10))),
            net.tx(0, nonce: 4, .withdraw(amount: Amount(units: 11))),
            net.tx(0, nonce: 5, .grantAgent(agent: b, policy: AgentPolicy(budget: Amount(units: 1_000), periodBlocks: 10, maxPerRequest: Amount(units: 100),
                                                                          models: ["m", "n"], expiresHeight: 99))),
            net.tx(0, nonce: 6, .revokeAgent(agent: b)),
            net.tx(0, nonce: 7, .payForCall(to: b, amount: Amount(units: 12), requestId: Hash256.of([7]))),
            net.tx(0, nonce: 9, .recordEvaluation(model: "m", evaluation: Evaluation(suite: Hash256.of([9]), name: "s", evaluator: b, correct: 1,
                                                                                  requests: [Hash256.of([1]), Hash256.of([2])], height: 0))),
            net.tx(0, nonce: 10, .registerDataset(DatasetManifest(name: "d", root: Hash256.of([4]), size: 5_000, chunkSize: 4_096, chunks: 2, license: "mit",
                                                                 price: Amount(units: 9), contributors: [Contributor(account: b, weight: 2)], totalWeight: 2,
                                                                 derivedFrom: Hash256.of([5])))),
            net.tx(0, nonce: 11, .buyData(dataset: Hash256.of([6]), server: b)),
            net.tx(0, nonce: 12, .confirmDelivery(grant: Hash256.of([7]))),
            net.tx(0, nonce: 13, .claimDelivery(grant: Hash256.of([7]), acknowledgement: net.keys[1].sign([1]))),
            net.tx(0, nonce: 14, .refundData(grant: Hash256.of([7]))),
            net.tx(0, nonce: 15, .citeDatasets(model: "m", datasets: [Hash256.of([8]), Hash256.of([9])])),
            net.tx(0, nonce: 8, .settleQuoted(receipts: [], quotes: [SpotQuote(requestId: Hash256.of([8]), premium: 1_000_000, height: 12)])),
        ]
    }

    @Test func canonicalAndJSONFormsRoundTrip() throws {
        for tx in samples {
            #expect(try Transaction(canonicalBytes: tx.canonicalBytes) == tx)
            let json = try JSONEncoder().encode(tx)
            let back = try JSONDecoder().decode(Transaction.self, from: json)
            #expect(back == tx)
            #expect(back.hasValidSignature)
        }
    }

    /// Receipts of format 1 keep the `settle` layout byte for byte (blocks written before
    /// commitments decode as they were); with a commitment they travel versioned, each
    /// signature over its own format's bytes; a versioned settle of format-1 receipts only is refused.
    @Test func settleTransactionsCarryBothReceiptFormats() throws {
        let node = KeyPair.deterministic("coding-node")
        func receipt(_ i: UInt8, _ c: ReceiptCommitment?) -> Receipt {
            var r = Receipt(requestId: Hash256.of([i]), requestHash: Hash256.of([2]), requestor: net.keys[1].address, node: node.address,
                            modelHash: Hash256.of([3]), inputTokens: 4, outputTokens: 5, priceIn: Amount(units: 6), priceOut: Amount(units: 7),
                            outputHash: Hash256.of([8]), timeMillis: 9, commitment: c)
            r.signAsNode(node, chainId: net.genesis.chainId)
            r.countersign(net.keys[0], chainId: net.genesis.chainId)
            return r
        }
        let old = receipt(1, nil)
        let new = receipt(2, ReceiptCommitment(root: Hash256.of([5]), chunks: 3, exact: true))
        let inexact = receipt(3, .inexact)
        #expect(old.nodeSigningBytes(chainId: net.genesis.chainId) != { var o = old; o.commitment = .inexact; return o }().nodeSigningBytes(chainId: net.genesis.chainId))
        for r in [old, new, inexact] { #expect(throws: Never.self) { try r.verify(chainId: net.genesis.chainId) } }
        let plain = net.tx(0, nonce: 0, .settle(receipts: [old]))
        #expect(plain.body.kind == .settle)
        var w = CanonicalWriter()
        old.encode(to: &w)
        #expect(plain.canonicalBytes.suffix(w.bytes.count + 64).prefix(w.bytes.count) == w.bytes[...])
        for receipts in [[new], [old, new, inexact]] {
            let tx = net.tx(0, nonce: 1, .settle(receipts: receipts))
            #expect(tx.body.kind == .settleVersioned)
            let back = try Transaction(canonicalBytes: tx.canonicalBytes)
            #expect(back == tx && back.hasValidSignature)
            let json = try JSONDecoder().decode(Transaction.self, from: try JSONEncoder().encode(tx))
            #expect(json == tx && json.hasValidSignature)
        }
        // The versioned kind with nothing but format-1 receipts is not canonical.
        var forged = net.tx(0, nonce: 2, .settle(receipts: [new])).canonicalBytes
        var v = CanonicalWriter()
        VersionedReceipt(new).encode(to: &v)
        var o = CanonicalWriter()
        VersionedReceipt(old).encode(to: &o)
        if let range = forged.firstRange(of: v.bytes), o.bytes.count != v.bytes.count {
            forged.replaceSubrange(range, with: o.bytes)
            #expect(throws: PlexusError.self) { try Transaction(canonicalBytes: forged) }
        }
        #expect(throws: PlexusError.self) { try VersionedReceipt(canonicalBytes: [3] + w.bytes) }
    }

    @Test func everyTruncationOfTheBytesIsRejected() throws {
        let bytes = samples[0].canonicalBytes
        for cut in 0..<bytes.count {
            #expect(throws: PlexusError.self) { try Transaction(canonicalBytes: Array(bytes.prefix(cut))) }
        }
        #expect(throws: PlexusError.self) { try Transaction(canonicalBytes: bytes + [0]) }
    }

    @Test func unknownKindsAreRejected() throws {
        var bytes = samples[0].canonicalBytes
        // The kind code follows the domain tag and the length-prefixed chain id.
        let offset = Transaction.domain.count + 4 + net.genesis.chainId.utf8.count
        bytes[offset] = 0x7f
        #expect { try Transaction(canonicalBytes: bytes) } throws: { ($0 as? PlexusError)?.code == .unknownKind }
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(samples[0])) as! [String: Any]
        json["kind"] = "mint"
        let data = try JSONSerialization.data(withJSONObject: json)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Transaction.self, from: data) }
    }

    @Test(arguments: [
        "", "{", "[]", "null", "{\"kind\":\"transfer\"}",
        "{\"chainId\":\"c\",\"kind\":\"transfer\",\"from\":\"plx00\",\"nonce\":0,\"fee\":\"1\",\"body\":{},\"signature\":\"00\"}",
    ])
    func malformedJSONIsRejected(text: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Transaction.self, from: Data(text.utf8)) }
    }

    @Test func negativeAndOverflowingNumbersInJSONAreRejected() throws {
        let good = try JSONSerialization.jsonObject(with: JSONEncoder().encode(samples[0])) as! [String: Any]
        for (key, value) in [("nonce", -1 as Any), ("nonce", 1e30 as Any), ("fee", "-5" as Any), ("fee", "99999999999999999999999" as Any)] {
            var j = good
            j[key] = value
            let data = try JSONSerialization.data(withJSONObject: j)
            #expect(throws: (any Error).self) { try JSONDecoder().decode(Transaction.self, from: data) }
        }
    }
}

extension TransactionCodingTests {
    /// Found by fuzzing (`ledger-json`): a proposal whose community name is longer than the
    /// canonical form allows was read from JSON, though its canonical bytes (what it is signed,
    /// hashed and sealed by) could not be read back. JSON now holds to the same limits.
    @Test func jsonBeyondTheCanonicalLimitsIsRefused() throws {
        let long = String(repeating: "b", count: Registry.maxName + 1)
        let tx = net.tx(0, nonce: 0, .propose(ProposalContent(communities: [long], title: "t")))
        let json = try JSONEncoder().encode(tx)
        #expect(throws: PlexusError.self) { try JSONDecoder().decode(Transaction.self, from: json) }
        let card = ModelCard(id: String(repeating: "m", count: Registry.maxName + 1), weightsHash: .zero, architecture: "llama", quantization: "Q8_0",
                             contextLength: 8, license: "mit", capabilities: [], creator: net.keys[0].address, royaltyBps: 0)
        #expect(throws: PlexusError.self) { try JSONDecoder().decode(Transaction.self, from: try JSONEncoder().encode(net.tx(0, nonce: 0, .registerModel(card)))) }
        // Within the limits, the same reads back.
        let ok = net.tx(0, nonce: 0, .propose(ProposalContent(communities: ["plexus"], title: "t")))
        #expect(try JSONDecoder().decode(Transaction.self, from: try JSONEncoder().encode(ok)) == ok)
    }
}
