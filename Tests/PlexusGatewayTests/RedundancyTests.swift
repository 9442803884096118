import PlexusCore
import PlexusLedger
import Testing
@testable import PlexusGateway

/// Redundant execution's choices: copies on distinct operators, and which answers to challenge.
@Suite struct RedundancyTests {
    static let owners = (0..<4).map { KeyPair.deterministic("owner-\($0)").address }
    static let keys = (0..<5).map { KeyPair.deterministic("rnode-\($0)").address }

    /// Node i run by operator `operators[i]`.
    static func candidates(_ operators: [Int]) -> [Candidate] {
        operators.enumerated().map { i, o in
            let offer = Offer(model: "m", priceIn: Amount(units: 1), priceOut: Amount(units: 1))
            return Candidate(node: NodeRecord(owner: owners[o], nodeKey: keys[i], endpoint: "http://127.0.0.1:\(9000 + i)", offers: [offer], registeredHeight: 1),
                             offer: offer, stats: NodeStats())
        }
    }

    @Test func copiesGoToDistinctOperatorsAndTheAnswerFailsOverAmongTheRest() throws {
        let c = Self.candidates([0, 0, 1, 2, 1])
        let one = try #require(Redundancy.assign(c, copies: 1))
        #expect(one.main.count == 5 && one.copies.isEmpty)
        let two = try #require(Redundancy.assign(c, copies: 2))
        #expect(two.copies.map(\.node.nodeKey) == [Self.keys[2]])
        // The answer may fail over to node 1 (same operator as node 0), never to operator 1's nodes.
        #expect(two.main.map(\.node.nodeKey) == [Self.keys[0], Self.keys[1], Self.keys[3]])
        let three = try #require(Redundancy.assign(c, copies: 3))
        #expect(three.copies.map(\.node.owner) == [Self.owners[1], Self.owners[2]] && three.main.map(\.node.owner).allSatisfy { $0 == Self.owners[0] })
        #expect(Redundancy.assign(Self.candidates([0, 0, 0]), copies: 2) == nil)
    }

    @Test func disagreementsMarkTheOddOneOutOrEveryCopy() {
        let a = Redundancy.Answer(tokens: [1, 2, 3], root: Hash256.of([1]))
        var b = a
        b.tokens[2] = 9
        var c = a
        c.root = Hash256.of([2])  // same tokens, other hidden states (another model behind the same hash)
        let multi = Redundancy.Answer(tokens: [1, 2, 3], root: nil)  // served by two nodes: tokens only
        #expect(Redundancy.suspects([a, a]).isEmpty && Redundancy.suspects([a, a, a]).isEmpty && Redundancy.suspects([a, multi]).isEmpty)
        #expect(Redundancy.suspects([a, b]) == [0, 1])
        #expect(Redundancy.suspects([a, c]) == [0, 1])
        #expect(Redundancy.suspects([a, b, a]) == [1])
        #expect(Redundancy.suspects([c, a, a]) == [0])
        #expect(Redundancy.suspects([a, b, c]) == [0, 1, 2])
        #expect(Redundancy.copyId(Hash256.of([7]), 1) != Redundancy.copyId(Hash256.of([7]), 2))
    }
}
