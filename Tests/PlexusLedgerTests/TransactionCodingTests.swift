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
