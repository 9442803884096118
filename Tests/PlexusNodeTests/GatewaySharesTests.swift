import PlexusCore
import PlexusLedger
import Testing
@testable import PlexusNode

/// A node's slots among gateways: one alone fills them; with others active each keeps a fair
/// share; fixed per-gateway limits on top; nothing changes on a refusal.
@Suite struct GatewaySharesTests {
    static let a = KeyPair.deterministic("gateway-a").address
    static let b = KeyPair.deterministic("gateway-b").address
    static let c = KeyPair.deterministic("gateway-c").address

    @Test func aGatewayAloneFillsEverySlot() {
        var s = GatewayShares(slots: 4, perGateway: .none)
        for _ in 0..<4 { #expect(s.admit(Self.a, now: 0) == .admitted) }
        #expect(s.admit(Self.a, now: 0) == .full)
        s.finish(Self.a, now: 10)
        #expect(s.admit(Self.a, now: 10) == .admitted)
        // b is turned away from the full node: the next slot to free up is kept for it.
        #expect(s.admit(Self.b, now: 10) == .full)
        s.finish(Self.a, now: 20)
        #expect(s.admit(Self.a, now: 20) == .full)
        #expect(s.admit(Self.b, now: 20) == .admitted)
    }

    @Test func aFloodingGatewayLeavesAnotherItsShare() {
        var s = GatewayShares(slots: 4, perGateway: .none)
        // b sent one request a moment ago: it is active, so a may not take its share away.
        #expect(s.admit(Self.b, now: 0) == .admitted)
        s.finish(Self.b, now: 100)
        for _ in 0..<3 { #expect(s.admit(Self.a, now: 200) == .admitted) }
        // a has 3 of 4 (past its share of 2); the last slot is kept for b.
        #expect(s.admit(Self.a, now: 200) == .full)
        #expect(s.admit(Self.b, now: 200) == .admitted)
        #expect(s.total == 4)
        // While b holds one (below its share), a at its share may not take b's reserve.
        s.finish(Self.a, now: 300)
        s.finish(Self.a, now: 300)
        #expect(s.inFlight[Self.a] == 1)
        #expect(s.admit(Self.a, now: 300) == .admitted)  // a: 2 = its share
        #expect(s.admit(Self.a, now: 300) == .full)      // the last free slot is b's
        #expect(s.admit(Self.b, now: 300) == .admitted)  // b reaches its share
        // Once b has been quiet past the window, a alone may fill the node again.
        for _ in 0..<2 { s.finish(Self.b, now: 400) }
        #expect(s.admit(Self.a, now: 6_000) == .admitted)
        #expect(s.admit(Self.a, now: 6_000) == .admitted)
        #expect(s.inFlight[Self.a] == 4)
    }

    @Test func sharesRoundUpAmongThreeGateways() {
        var s = GatewayShares(slots: 8, perGateway: .none)
        #expect(s.admit(Self.b, now: 0) == .admitted)
        #expect(s.admit(Self.c, now: 0) == .admitted)
        // Share 3 each; b and c (1 each, below it) are each owed a free slot: a may take 8 - 2 - 2 = 4.
        var taken = 0
        while s.admit(Self.a, now: 0) == .admitted { taken += 1 }
        #expect(taken == 4)
        #expect(s.admit(Self.b, now: 0) == .admitted)
        #expect(s.admit(Self.c, now: 0) == .admitted)
        #expect(s.total == 8)
    }

    @Test func fixedLimitsPerGatewayApplyToo() {
        var s = GatewayShares(slots: 16, perGateway: RateLimits(requestsPerSecond: 0, burst: 0, concurrency: 2))
        #expect(s.admit(Self.a, now: 0) == .admitted)
        #expect(s.admit(Self.a, now: 0) == .admitted)
        #expect(s.admit(Self.a, now: 0) == .limited(.tooMany))
        #expect(s.admit(Self.b, now: 0) == .admitted)
        var rate = GatewayShares(slots: 16, perGateway: RateLimits(requestsPerSecond: 1, burst: 2, concurrency: 0))
        #expect(rate.admit(Self.a, now: 0) == .admitted)
        #expect(rate.admit(Self.a, now: 0) == .admitted)
        #expect(rate.admit(Self.a, now: 0) == .limited(.tooFast(retryAfter: 1)))
        #expect(rate.admit(Self.a, now: 1_000) == .admitted)
    }

    @Test func randomTrafficNeverOverfillsAndRefusalsChangeNothing() {
        var rng = SplitMix(seed: 7)
        let gateways = [Self.a, Self.b, Self.c]
        var s = GatewayShares(slots: 5, perGateway: RateLimits(requestsPerSecond: 0, burst: 0, concurrency: 4))
        var held: [Address] = []
        var now: UInt64 = 0
        for _ in 0..<20_000 {
            now += rng.next() % 50
            if !held.isEmpty, rng.next() % 2 == 0 {
                let g = held.remove(at: Int(rng.next() % UInt64(held.count)))
                s.finish(g, now: now)
            } else {
                let g = gateways[Int(rng.next() % 3)]
                let before = (s.total, s.inFlight)
                if s.admit(g, now: now) == .admitted { held.append(g) } else { #expect(before == (s.total, s.inFlight)) }
            }
            #expect(s.total == held.count && s.total <= 5)
            #expect(s.inFlight.values.allSatisfy { $0 <= 4 })
        }
    }
}

/// A small deterministic generator for the property test.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A node's `/health`: unlisted, listed elsewhere, jailed, or out of touch with the ledger.
@Suite struct NodeHealthTests {
    @Test func eachProblemIsNamedWithItsCause() {
        let now: UInt64 = 100_000
        var f = NodeHealth.Facts(ledgerMillis: now - 5_000, ledgerError: nil, listed: true, endpoint: "http://127.0.0.1:9", jailed: false)
        #expect(NodeHealth.problems(f, expectedEndpoint: "http://127.0.0.1:9", now: now).isEmpty)
        #expect(NodeHealth.problems(f, expectedEndpoint: "http://127.0.0.1:10", now: now).map(\.component) == ["registration"])
        f.listed = false
        #expect(NodeHealth.problems(f, expectedEndpoint: "http://127.0.0.1:9", now: now).first?.reason.contains("does not list this node") == true)
        f.listed = true
        f.jailed = true
        #expect(NodeHealth.problems(f, expectedEndpoint: "http://127.0.0.1:9", now: now).map(\.component) == ["standing"])
        f.jailed = false
        f.ledgerMillis = now - 31_000
        f.ledgerError = "connection refused"
        let stale = NodeHealth.problems(f, expectedEndpoint: "http://127.0.0.1:9", now: now)
        #expect(stale.map(\.component) == ["ledger"] && stale[0].reason.contains("31 s") && stale[0].reason.contains("connection refused"))
    }
}
