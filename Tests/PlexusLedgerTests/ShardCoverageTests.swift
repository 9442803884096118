import PlexusCore
import PlexusLedger
import Testing

/// Coverage of a model's layers by shard offers: spans with their operators, gaps, and whether
/// the spans chain from the first layer to the last.
@Suite struct ShardCoverageTests {
    static func node(_ i: Int, owner: Int? = nil, _ span: (UInt32, UInt32)?, total: UInt32 = 30, model: String = "m") -> NodeRecord {
        let key = KeyPair.deterministic("cover-\(i)").address
        let offer = Offer(model: model, priceIn: Amount(units: 1), priceOut: Amount(units: 1),
                          layers: span.map { LayerSpan(start: $0.0, end: $0.1, total: total) })
        return NodeRecord(owner: KeyPair.deterministic("owner-\(owner ?? i)").address, nodeKey: key, endpoint: "http://127.0.0.1:\(9000 + i)",
                          offers: [offer], registeredHeight: 1)
    }

    @Test func spansGapsAndChains() {
        // Two operators on 0-15 (one with two nodes), one on 20-30, a whole-model node, another model.
        let nodes = [Self.node(0, (0, 15)), Self.node(1, owner: 0, (0, 15)), Self.node(2, (0, 15)), Self.node(3, (20, 30)),
                     Self.node(4, nil), Self.node(5, (15, 20), model: "other")]
        let c = ShardCoverage.of("m", nodes: nodes)
        #expect(c.layers == 30 && c.wholeNodes == 1)
        #expect(c.spans.map(\.layers.description) == ["0-15", "20-30"])
        #expect(c.spans.map(\.operators) == [2, 1] && c.spans[0].nodes.count == 3)
        #expect(c.gaps.map(\.description) == ["15-20"])
        #expect(!c.chainable)
        #expect(c.summary.contains("no shard serves layers 15-20"))
        // The gap filled: a chain exists; overlapping spans leave no gap but need not chain.
        #expect(ShardCoverage.of("m", nodes: nodes + [Self.node(6, (15, 20))]).chainable)
        let overlap = ShardCoverage.of("m", nodes: [Self.node(0, (0, 16)), Self.node(1, (15, 30))])
        #expect(overlap.gaps.isEmpty && !overlap.chainable)
        let none = ShardCoverage.of("none", nodes: nodes)
        #expect(none.layers == nil && none.wholeNodes == 0 && none.spans.isEmpty && none.gaps.isEmpty && !none.chainable)
    }
}
