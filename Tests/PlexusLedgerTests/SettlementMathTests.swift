import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct PricingTests {
    @Test func costRoundsUpToTheUnitAndIsExact() throws {
        #expect(try Pricing.cost(inputTokens: 0, outputTokens: 0, priceIn: Amount(units: 5), priceOut: Amount(units: 7)) == .zero)
        #expect(try Pricing.cost(inputTokens: 1, outputTokens: 0, priceIn: Amount(units: 1), priceOut: .zero) == Amount(units: 1))
        #expect(try Pricing.cost(inputTokens: 1_000_000, outputTokens: 0, priceIn: Amount(units: 3), priceOut: .zero) == Amount(units: 3))
        #expect(try Pricing.cost(inputTokens: 1_000_001, outputTokens: 0, priceIn: Amount(units: 3), priceOut: .zero) == Amount(units: 4))
        #expect(try Pricing.cost(inputTokens: 250, outputTokens: 750, priceIn: Amount(units: 2_000_000), priceOut: Amount(units: 4_000_000)) == Amount(units: 3_500))
        // Products beyond 64 bits are still exact.
        let big = try Pricing.cost(inputTokens: UInt64.max, outputTokens: 0, priceIn: Amount(units: 1_000_000), priceOut: .zero)
        #expect(big == Amount(units: UInt64.max))
        #expect(throws: PlexusError.self) { try Pricing.cost(inputTokens: UInt64.max, outputTokens: 1, priceIn: Amount(units: 1_000_000), priceOut: Amount(units: 1)) }
        #expect(throws: PlexusError.self) { try Pricing.cost(inputTokens: UInt64.max, outputTokens: UInt64.max, priceIn: Amount(units: UInt64.max), priceOut: Amount(units: UInt64.max)) }
    }

    @Test func costAgreesWithWideArithmeticOnRandomInputs() throws {
        var rng = SeededGenerator(seed: 77)
        for _ in 0..<20_000 {
            let i = rng.next() % 5_000_000, o = rng.next() % 5_000_000
            let pi = rng.next() % 10_000_000_000, po = rng.next() % 10_000_000_000
            let exact = (Double(i) * Double(pi) + Double(o) * Double(po)) / 1e6
            let c = try Pricing.cost(inputTokens: i, outputTokens: o, priceIn: Amount(units: pi), priceOut: Amount(units: po))
            // Within floating error of the exact ceiling, and never below the exact value.
            #expect(Double(c.units) >= exact.rounded(.down) && Double(c.units) <= exact.rounded(.up) + 1)
            // Small enough for exact 64-bit checking: compare precisely.
            if i < 1 << 20, o < 1 << 20, pi < 1 << 40, po < 1 << 40 {
                let n = i * pi + o * po
                #expect(c.units == (n + 999_999) / 1_000_000)
            }
        }
    }

    @Test func splitsAlwaysAddUpToTheCharge() throws {
        var rng = SeededGenerator(seed: 8)
        for _ in 0..<20_000 {
            let charge = Amount(units: rng.next() % 3 == 0 ? rng.next() : rng.next() % 1_000_000)
            let fee = rng.next() % 2_001, royalty = rng.next() % 3_001
            let s = try Pricing.split(charge, feeBps: fee, royaltyBps: royalty)
            #expect(s.node.units &+ s.fee.units &+ s.royalty.units == charge.units)
            #expect(s.node.units >= s.fee.units || fee > 3_000 || charge.units < 10)
        }
        let s = try Pricing.split(Amount(units: UInt64.max), feeBps: 10_000, royaltyBps: 0)
        #expect(s.fee == Amount(units: UInt64.max) && s.node == .zero)
        #expect(throws: PlexusError.self) { try Pricing.split(Amount(units: 10), feeBps: 6_000, royaltyBps: 5_000) }
        #expect(throws: PlexusError.self) { try Pricing.split(Amount(units: 10), feeBps: UInt64.max, royaltyBps: 1) }
    }
}

@Suite struct ReceiptTests {
    func receipt(node: KeyPair, requestor: Address) -> Receipt {
        Receipt(requestId: Hash256.of(Array("req-1".utf8)), requestHash: Hash256.of(Array("body".utf8)), requestor: requestor,
                node: node.address, modelHash: Hash256.of(Array("weights".utf8)), inputTokens: 37, outputTokens: 12,
                firstOutputToken: 4, priceIn: Amount(units: 100_000), priceOut: Amount(units: 400_000),
                outputHash: Hash256.of(Array("tokens".utf8)), timeMillis: 1_790_000_000_000)
    }

    @Test func signedReceiptsVerifyAndRoundTrip() throws {
        let node = KeyPair.deterministic("node"), gateway = KeyPair.deterministic("gateway")
        var r = receipt(node: node, requestor: KeyPair.deterministic("alice").address)
        r.signAsNode(node, chainId: "plexus-test")
        r.countersign(gateway, chainId: "plexus-test")
        try r.verify(chainId: "plexus-test")
        let decoded = try Receipt(canonicalBytes: r.canonicalBytes)
        #expect(decoded == r)
        try decoded.verify(chainId: "plexus-test")
        #expect(try r.cost() == Amount(units: 9))  // ⌈(37·100000 + 12·400000)/10⁶⌉ = ⌈8.5⌉
    }

    @Test func anyChangeOrWrongChainBreaksASignature() throws {
        let node = KeyPair.deterministic("node"), gateway = KeyPair.deterministic("gateway")
        var r = receipt(node: node, requestor: KeyPair.deterministic("alice").address)
        r.signAsNode(node, chainId: "plexus-test")
        r.countersign(gateway, chainId: "plexus-test")
        #expect(throws: PlexusError.self) { try r.verify(chainId: "plexus-other") }
        var tampered = [Receipt](repeating: r, count: 6)
        tampered[0].outputTokens += 1
        tampered[1].priceOut = Amount(units: r.priceOut.units + 1)
        tampered[2].requestor = KeyPair.deterministic("mallory").address
        tampered[3].firstOutputToken = 0
        tampered[4].gateway = KeyPair.deterministic("other-gateway").address
        tampered[5].nodeSignature = .empty
        for t in tampered { #expect(throws: PlexusError.self) { try t.verify(chainId: "plexus-test") } }
        // Every truncation of the encoding is refused.
        let bytes = r.canonicalBytes
        for n in stride(from: 0, to: bytes.count, by: 7) {
            #expect(throws: PlexusError.self) { try Receipt(canonicalBytes: Array(bytes[0..<n])) }
        }
    }
}
