import PlexusCore
import PlexusEngine
import PlexusLedger

/// Redundant execution (`"redundancy": k` in the `plexus` policy): the request runs on
/// k nodes of distinct operators at once. The built-in engine is exact, so honest nodes
/// give the same tokens and, for an answer from one node, the same commitment root; any
/// difference marks the answers to challenge. Pure: candidates and answers in, choices out.
enum Redundancy {
    /// The nodes for k copies: the first candidate for the answer the client sees (its
    /// failover among the candidates no copy uses), then one per operator not yet used.
    /// Nil when fewer than k operators can serve.
    static func assign(_ candidates: [Candidate], copies k: Int) -> (main: [Candidate], copies: [Candidate])? {
        guard k > 1 else { return (candidates, []) }
        var operators: Set<Address> = []
        var chosen: [Candidate] = []
        for c in candidates where !operators.contains(c.node.owner) {
            operators.insert(c.node.owner)
            chosen.append(c)
            if chosen.count == k { break }
        }
        guard chosen.count == k else { return nil }
        let copies = Array(chosen.dropFirst())
        let taken = Set(copies.map(\.node.owner))
        return (candidates.filter { !taken.contains($0.node.owner) }, copies)
    }

    /// One copy's answer: its output tokens, and its commitment root when one node served it all.
    struct Answer: Equatable {
        var tokens: [TokenID]
        var root: Hash256?
    }

    /// The copies to challenge: none when all agree; the ones outside a strict majority
    /// when there is one; every copy when there is none (with two copies that disagree,
    /// either may be the cheat).
    static func suspects(_ answers: [Answer]) -> [Int] {
        func same(_ a: Answer, _ b: Answer) -> Bool { a.tokens == b.tokens && (a.root == nil || b.root == nil || a.root == b.root) }
        guard answers.count > 1, !answers.allSatisfy({ same($0, answers[0]) }) else { return [] }
        for a in answers {
            let agreeing = answers.indices.filter { same(answers[$0], a) }
            if 2 * agreeing.count > answers.count { return answers.indices.filter { !agreeing.contains($0) } }
        }
        return Array(answers.indices)
    }

    /// The request id of copy `j` (1...k-1) of `id`: derived, so each copy is recorded, settled and paid on its own.
    static func copyId(_ id: Hash256, _ j: Int) -> Hash256 {
        Hash256.of(id.bytes + Array("plexus-redundant-copy".utf8) + [UInt8(j)])
    }
}
