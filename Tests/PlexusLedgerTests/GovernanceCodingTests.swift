import Foundation
import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Governance transactions on the wire, and governance blocks replayed by a replica.
@Suite struct GovernanceCodingTests {
    let net = TestNetwork(accounts: 3)

    var samples: [Transaction] {
        let a = net.keys[1].address, id = Hash256.of([1, 2, 3])
        let content = ProposalContent(communities: [Governance.root, "guild"], title: "everything", description: "all the actions", actions: [
            .setParam(name: "protocolFeeBps", value: 300), .setCommunityParam(community: "guild", name: "quorumBps", value: 10),
            .setScheme(community: "guild", scheme: .quadratic), .setOpen(community: "guild", open: false), .listModel("m"), .delistModel("m"), .delistDataset(Hash256.of([5])), .relistDataset(Hash256.of([6])),
            .treasurySpend(to: a, amount: Amount(units: 5)), .grantReputation(account: a, points: 3), .federationJoin("guild"), .federationLeave("guild"),
        ])
        let bodies: [Transaction.Body] = [
            .propose(content), .vote(proposal: id, weights: [0, 2, 1]), .delegate(to: a), .queue(proposal: id), .execute(proposal: id),
            .cancel(proposal: id), .createCommunity(id: "guild", scheme: .sortition, open: true), .joinCommunity(id: "guild"),
            .leaveCommunity(id: "guild"), .admitMember(community: "guild", account: a), .forkCommunity(parent: "guild", id: "guild2"),
            .approveCandidates(community: "guild", candidates: [a, net.keys[2].address]),
            .recordSummary(proposal: id, summaryHash: Hash256.of([4]), model: "m", requestId: Hash256.of([5])),
        ]
        return bodies.enumerated().map { net.tx(0, nonce: UInt64($0.offset), $0.element) }
    }

    @Test func everyKindRoundTripsInBothForms() throws {
        for tx in samples {
            #expect(try Transaction(canonicalBytes: tx.canonicalBytes) == tx)
            let back = try JSONDecoder().decode(Transaction.self, from: JSONEncoder().encode(tx))
            #expect(back == tx)
            #expect(back.hasValidSignature)
        }
    }

    @Test func truncatedAndMalformedGovernanceBytesAreRejected() throws {
        for tx in samples {
            let bytes = tx.canonicalBytes
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) {
                #expect(throws: PlexusError.self) { try Transaction(canonicalBytes: Array(bytes.prefix(cut))) }
            }
        }
        // An unknown voting scheme in JSON, and an unknown action kind.
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(samples[6])) as! [String: Any]
        var body = json["body"] as! [String: Any]
        body["scheme"] = "plutocracy"
        json["body"] = body
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Transaction.self, from: JSONSerialization.data(withJSONObject: json)) }
        var propose = try JSONSerialization.jsonObject(with: JSONEncoder().encode(samples[0])) as! [String: Any]
        var pbody = propose["body"] as! [String: Any]
        var content = pbody["content"] as! [String: Any]
        content["actions"] = [["kind": "mint_tokens", "amount": "5"]]
        pbody["content"] = content
        propose["body"] = pbody
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Transaction.self, from: JSONSerialization.data(withJSONObject: propose)) }
    }

    /// A chain with stake, a proposal, votes, an execution, a sortition
    /// community and its draw: a replica applying the sealed blocks reaches the
    /// same state root at every height, draws included.
    @Test func aReplicaReplaysGovernanceBlocksToTheSameRoots() throws {
        let net = TestNetwork(accounts: 6, params: ["votingDelayBlocks": 1, "votingPeriodBlocks": 3, "timelockBlocks": 1, "lateQuorumExtensionBlocks": 0,
                                                    "councilSize": 2, "councilEpochBlocks": 4, "sortitionDelayBlocks": 2])
        var chain = try Chain(genesis: net.genesis)
        var nonces = [UInt64](repeating: 0, count: 6)
        var blocks: [Block] = []
        var time: UInt64 = 2_000
        func block(_ txs: [(Int, Transaction.Body)]) throws {
            time += 10
            if txs.isEmpty { try chain.openEmptyBlock(nowMillis: time) }
            for (i, body) in txs {
                let tx = net.tx(i, nonce: nonces[i], body)
                _ = try chain.submit(tx, hash: tx.hash, nowMillis: time)
                nonces[i] += 1
            }
            if let c = try chain.seal(signer: net.orderer) { blocks.append(c.block) }
        }
        let content = ProposalContent(communities: [Governance.root], title: "fee", actions: [.setParam(name: "protocolFeeBps", value: 250)])
        try block([(0, .stake(amount: Amount(units: 500))), (1, .stake(amount: Amount(units: 300))),
                   (2, .createCommunity(id: "lot", scheme: .sortition, open: true))])
        try block([(3, .joinCommunity(id: "lot")), (4, .joinCommunity(id: "lot")), (5, .joinCommunity(id: "lot")),
                   (1, .delegate(to: net.keys[0].address)), (0, .propose(content))])
        try block([])
        try block([(0, .vote(proposal: content.id, weights: Choice.for.weights))])
        for _ in 0..<3 { try block([]) }
        try block([(2, .queue(proposal: content.id))])
        try block([(3, .execute(proposal: content.id))])
        for _ in 0..<6 { try block([]) }
        #expect(chain.state.params[.protocolFeeBps] == 250)
        #expect(chain.state.communities["lot"]!.councils.contains { $0.members.count == 2 })

        var replica = try Chain(genesis: net.genesis)
        for b in blocks {
            let c = try replica.apply(block: b)
            #expect(c.block.header.stateRoot == b.header.stateRoot)
        }
        #expect(replica.state.communities["lot"] == chain.state.communities["lot"])
        #expect(replica.state.proposals == chain.state.proposals)
    }
}
