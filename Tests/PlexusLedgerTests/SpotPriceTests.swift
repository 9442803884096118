import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// The spot price: the premium's rule, a load ramp through the state machine (never more than
/// the bound per block, back to zero when load falls), quotes that lock the price at admission,
/// and a node that trades with itself gaining nothing.
@Suite struct SpotPriceTests {
    static let rule = SpotPrice.Rule(targetBps: 5_000, bandBps: 1_000, maxChangeBps: 1_250, step: 1_000_000, max: 100 * Amount.unitsPerPLX)

    @Test func theRuleMovesWithinItsBoundAndRestsInTheBand() {
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<50_000 {
            let p = [0, 1, 999_999, rng.next() % (200 * Amount.unitsPerPLX), UInt64.max][Int(rng.next() % 5)]
            let u = [0, 4_000, 4_001, 5_000, 6_000, 6_001, 10_000, rng.next() % 2_000_000][Int(rng.next() % 8)]
            let next = SpotPrice.next(p, utilizationBps: u, rule: Self.rule)
            #expect(next <= Self.rule.max)
            if p > Self.rule.max { continue }
            if u > 6_000 {
                #expect(next >= min(p, Self.rule.max) && (next == Self.rule.max || next - p <= Self.rule.bound(p)))
            } else if u < 4_000 {
                #expect(next <= p && p - next <= Self.rule.bound(p))
            } else {
                #expect(next == min(p, Self.rule.max))
            }
        }
        // From zero, one step; at twice the target and more, the whole bound.
        #expect(SpotPrice.next(0, utilizationBps: 10_000, rule: Self.rule) == 1_000_000)
        #expect(SpotPrice.next(80_000_000, utilizationBps: 50_000, rule: Self.rule) == 90_000_000)
        #expect(SpotPrice.next(80_000_000, utilizationBps: 0, rule: Self.rule) == 70_000_000)
        #expect(SpotPrice.next(500_000, utilizationBps: 0, rule: Self.rule) == 0)
        // Utilization: 300 tokens against 8 slots × 1 token/s × 10 s.
        #expect(SpotPrice.utilizationBps(tokens: 300, slots: 8, tokensPerSecond: 1, windowMillis: 10_000) == 37_500)
        #expect(SpotPrice.utilizationBps(tokens: 0, slots: 0, tokensPerSecond: 1, windowMillis: 10_000) == 0)
        #expect(SpotPrice.utilizationBps(tokens: 1, slots: 0, tokensPerSecond: 1, windowMillis: 10_000) == 1_000_000)
        #expect(SpotPrice.utilizationBps(tokens: .max, slots: .max, tokensPerSecond: .max, windowMillis: .max) <= 1_000_000)
    }

    /// Short windows and a small capacity, so that one request a block is heavy load: 2 nodes
    /// × 1 slot × 1 token a second over 10 s is 20 tokens; a request reads 20 and writes 10.
    let base = VerificationStateTests(params: ["premiumWindowMillis": 10_000, "slotTokensPerSecond": 1, "premiumPeriodMillis": 1_000,
                                               "quoteValidityBlocks": 50, "challengeWindowBlocks": 12])

    func quoted(_ l: VerificationStateTests.Ledger, _ r: Receipt, premium: UInt64? = nil, height: UInt64? = nil) -> Transaction.Body {
        let h = height ?? l.state.height
        let p = premium ?? l.state.spot["m"]?.premium(at: h) ?? 0
        return .settleQuoted(receipts: [r], quotes: [SpotQuote(requestId: r.requestId, premium: p, height: h)])
    }

    @Test func aLoadRampMovesThePremiumWithinTheBoundPerBlockAndItReturnsToZero() throws {
        let l = try base.network()
        var time = l.state.timeMillis + 1_000
        var premiums: [UInt64] = []
        var charges: [(premium: UInt64, charged: UInt64)] = []
        for i in 0..<40 {
            let r = base.receipt("ramp-\(i)", requestor: 5, node: i % 2, output: 10, exact: false)
            let body = quoted(l, r)
            guard case let .settleQuoted(_, quotes) = body else { return }
            try l.send(4, body, at: time)
            let s = try #require(l.state.settlements[r.requestId], "ramp-\(i)")
            charges.append((quotes[0].premium, s.charge.units))
            premiums.append(l.state.spot["m"]?.premium ?? 0)
            time += 1_000
        }
        // The load fell: only other transactions now, a second apart.
        for _ in 0..<80 {
            try l.send(0, .transfer(to: l.address(0), amount: Amount(units: 1)), at: time)
            premiums.append(l.state.spot["m"]?.premium ?? 0)
            time += 1_000
        }
        let rule = SpotPrice.Rule(l.state.params)
        for (a, b) in zip(premiums, premiums.dropFirst()) {
            #expect((a > b ? a - b : b - a) <= rule.bound(a), "the premium went from \(a) to \(b) in one block")
        }
        let top = premiums.max() ?? 0
        #expect(top > 20 * rule.step, "the ramp raised the premium only to \(top)")
        #expect(premiums.last == 0, "the premium did not return to zero: \(premiums.suffix(5))")
        // Each request paid its ask plus the premium it was quoted, on its 30 tokens: ⌈30 · p / 10⁶⌉.
        for (p, charged) in charges {
            let ask: UInt64 = 20 * VerificationStateTests.plx / 1_000_000 + 10 * 2 * VerificationStateTests.plx / 1_000_000
            #expect(charged == ask + (30 * p + 999_999) / 1_000_000)
        }
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    @Test func aQuoteLocksThePriceOfAnAdmittedRequest() throws {
        let l = try base.network()
        var time = l.state.timeMillis + 1_000
        // Load raises the premium.
        for i in 0..<15 {
            try l.send(4, quoted(l, base.receipt("load-\(i)", output: 10, exact: false)), at: time)
            time += 1_000
        }
        // Admitted now: the quote is the premium in force at this height.
        let admittedAt = l.state.height
        let locked = try #require(l.state.spot["m"]?.premium(at: admittedAt))
        #expect(locked > 0)
        for i in 0..<5 {
            try l.send(4, quoted(l, base.receipt("more-\(i)", output: 10, exact: false)), at: time)
            time += 1_000
        }
        #expect(l.state.spot["m"]?.premium != locked, "the premium should have moved on")
        let r = base.receipt("admitted-earlier", output: 10, exact: false)
        // A quote that is not the premium of its height, one from the future, none at all: refused, nothing moves.
        for body in [quoted(l, r, premium: locked + 1, height: admittedAt), quoted(l, r, premium: locked, height: l.state.height + 5),
                     Transaction.Body.settle(receipts: [r])] {
            let escrow = l.state.account(l.address(5)).escrow
            let events = try l.send(4, body, at: time)
            #expect(events.contains { if case .settlementRejected = $0 { true } else { false } })
            #expect(l.state.settlements[r.requestId] == nil && l.state.account(l.address(5)).escrow == escrow)
        }
        // The quote locked at admission: the request pays that premium, whatever it is now.
        let treasury0 = l.state.treasury
        try l.send(4, quoted(l, r, premium: locked, height: admittedAt), at: time)
        let s = try #require(l.state.settlements[r.requestId])
        let premium = (30 * locked + 999_999) / 1_000_000
        #expect(s.charge.units == 40_000 + premium)
        #expect(l.state.spotCharges[r.requestId] == SpotCharge(premium: locked, quoteHeight: admittedAt, amount: Amount(units: premium)))
        // At finality the premium goes to the treasury with the fee, never to the node.
        try l.tick(until: l.state.height + 13)
        #expect(l.state.settlements[r.requestId]?.status == .final)
        #expect(s.payouts.reduce(0) { $0 + $1.amount.units } == 40_000 - 40_000 * l.state.params[.protocolFeeBps] / 10_000)
        #expect(l.state.treasury.units >= treasury0.units + premium)
        // A quote older than the validity window is refused.
        try l.tick(until: admittedAt + 51)
        let late = base.receipt("admitted-long-ago", output: 10, exact: false)
        let events = try l.send(4, quoted(l, late, premium: locked, height: admittedAt))
        #expect(events.contains { if case .settlementRejected = $0 { true } else { false } })
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }

    /// A node's operator sends its own node traffic to raise the premium: every request costs it
    /// the premium and the fee more than its node earns, so it only loses.
    @Test func aNodeThatSendsItselfTrafficGainsNothing() throws {
        let l = try base.network()
        let owner = l.address(1)
        try l.send(1, .deposit(requestor: owner, amount: Amount(units: 10 * VerificationStateTests.plx)))
        func wealth() -> UInt64 { let a = l.state.account(owner); return a.balance.units + a.escrow.units + a.staked.units }
        let before = wealth()
        var time = l.state.timeMillis + 1_000
        var paidPremium: UInt64 = 0
        for i in 0..<30 {
            let r = base.receipt("self-\(i)", requestor: 1, node: 0, output: 10, exact: false)
            try l.send(4, quoted(l, r), at: time)
            paidPremium += l.state.spotCharges[r.requestId]?.amount.units ?? 0
            time += 1_000
        }
        try l.tick(until: l.state.height + 13)
        #expect(paidPremium > 0, "the self-dealing raised no premium")
        // Net: it paid ask + premium for each request and got back the ask less the fee.
        let fees = 30 * (40_000 * l.state.params[.protocolFeeBps] / 10_000)
        #expect(wealth() == before - paidPremium - fees, "owner's wealth \(wealth()) vs \(before) - \(paidPremium) - \(fees)")
        #expect(try l.state.circulatingTotal() == l.state.totalSupply)
    }
}

extension VerificationStateTests.Ledger {
    /// Seals what is open, then replays every block on a fresh chain and loads the stored state:
    /// both must reach this chain's root. Returns the state loaded from storage.
    @discardableResult
    func replayAndRestart(sourceLocation: SourceLocation = #_sourceLocation) throws -> LedgerState {
        if let c = try chain.seal(signer: net.orderer) { commits.append(c) }
        var replica = try Chain(genesis: net.genesis)
        for c in commits { _ = try replica.apply(block: c.block) }
        #expect(replica.stateRoot() == chain.stateRoot(), sourceLocation: sourceLocation)
        let dir = try TemporaryDirectory("plexus-restart")
        defer { dir.remove() }
        let store = try BlockStore(path: dir.path + "/ledger.sqlite")
        try store.initialize(genesis: net.genesis)
        for c in commits { try store.commit(c) }
        var loaded = try store.load().state
        #expect(loaded.commit().root == chain.stateRoot(), sourceLocation: sourceLocation)
        return loaded
    }

    /// Sends `body` from account `i` in a block at block time `time` (milliseconds), then seals it.
    @discardableResult
    func send(_ i: Int, _ body: Transaction.Body, at time: UInt64) throws -> [Event] {
        let n = nonces[i] ?? 0
        let tx = net.tx(i, nonce: n, body)
        _ = try chain.submit(tx, hash: tx.hash, nowMillis: time)
        nonces[i] = n + 1
        let events = chain.open?.events.map(\.event) ?? []
        if let c = try chain.seal(signer: net.orderer) { commits.append(c) }
        return events
    }
}
