import PlexusCore
import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct TestKitTests {
    @Test func testNetworksAreDeterministic() throws {
        let a = TestNetwork(accounts: 3), b = TestNetwork(accounts: 3)
        #expect(a.genesis.hash == b.genesis.hash)
        #expect(try a.genesis.initialState().totalSupply == Amount(units: 3_000 * Amount.unitsPerPLX))
        #expect(a.tx(0, nonce: 0, .stake(amount: Amount(units: 1))).hasValidSignature)
    }

    @Test func manualClockMovesOnlyWhenAdvanced() {
        let c = ManualClock(startMillis: 10)
        #expect(c.nowMillis() == 10)
        c.advance(millis: 5)
        #expect(c.nowMillis() == 15)
    }

    @Test func seededGeneratorRepeats() {
        var g1 = SeededGenerator(seed: 42), g2 = SeededGenerator(seed: 42)
        let s1 = (0..<5).map { _ in g1.next() }, s2 = (0..<5).map { _ in g2.next() }
        #expect(s1 == s2)
        #expect(Set(s1).count == 5)
    }
}
