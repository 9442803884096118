import Foundation
import PlexusCore
import Testing

@Suite struct AmountTests {
    @Test(arguments: [
        ("1", UInt64(1_000_000_000)), ("0.5", 500_000_000), ("12.000000001", 12_000_000_001),
        ("0", 0), ("1500u", 1_500), ("18446744073u", 18_446_744_073),
    ])
    func parsesPLXAndBaseUnits(text: String, units: UInt64) throws {
        #expect(try Amount(parsing: text).units == units)
    }

    @Test(arguments: ["-1", "1.0000000001", "1e9", "", ".5", "1.", "abc", "18446744074", "99999999999999999999u", "1,5"])
    func rejectsMalformedText(text: String) {
        #expect(throws: PlexusError.self) { try Amount(parsing: text) }
    }

    @Test func checkedArithmeticThrows() throws {
        #expect(throws: PlexusError.self) { try Amount.max.adding(Amount(units: 1)) }
        #expect(throws: PlexusError.self) { try Amount(units: 1).subtracting(Amount(units: 2)) }
        #expect(throws: PlexusError.self) { try Amount.max.multiplied(by: 2) }
        #expect(try Amount(units: 5).subtracting(Amount(units: 5)) == .zero)
        #expect(try Amount(units: 1_000).scaled(by: 250, over: 10_000) == Amount(units: 25))
        #expect(try Amount.max.scaled(by: 1, over: 2).units == UInt64.max / 2)
    }

    @Test func jsonIsABaseUnitString() throws {
        let data = try JSONEncoder().encode(Amount(units: 42))
        #expect(String(decoding: data, as: UTF8.self) == "\"42\"")
        #expect(try JSONDecoder().decode(Amount.self, from: Data("\"18446744073709551615\"".utf8)) == .max)
    }

    @Test(arguments: ["\"-5\"", "\"18446744073709551616\"", "\"1.5\"", "-5", "1.5", "1e30", "\"\"", "\" 5\""])
    func jsonRejectsNegativeFractionalAndHuge(json: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Amount.self, from: Data(json.utf8)) }
    }

    @Test func plxTextTrimsZeros() {
        #expect(Amount(units: 1_500_000_000).plxText == "1.5")
        #expect(Amount(units: 1).plxText == "0.000000001")
        #expect(Amount(units: 3_000_000_000).description == "3 PLX")
    }
}
