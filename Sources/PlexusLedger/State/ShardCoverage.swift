import PlexusCore

/// How a model's layers are served: by whole-model nodes, and by shards of which spans, each
/// by how many operators; the layers no shard serves; and whether the spans chain from the
/// first layer to the last (a pipeline can be built).
public struct ShardCoverage: Sendable, Codable, Equatable {
    public struct Span: Sendable, Codable, Equatable {
        public var layers: LayerSpan
        /// Distinct operators (owners) serving it, and their node keys.
        public var operators: Int
        public var nodes: [Address]
    }

    public var model: String
    /// The model's layer count, as its shards' offers give it (nil without shards).
    public var layers: UInt32?
    public var wholeNodes: Int
    public var spans: [Span]
    /// Layers [start, end) no shard serves.
    public var gaps: [LayerSpan]
    /// Whether spans chain from layer 0 to the last.
    public var chainable: Bool

    /// The coverage of `model` by `nodes` (the servable ones, as the ledger lists them).
    public static func of(_ model: String, nodes: [NodeRecord]) -> ShardCoverage {
        var whole = 0
        var bySpan: [LayerSpan: (owners: Set<Address>, nodes: [Address])] = [:]
        for n in nodes {
            guard let o = n.offer(for: model) else { continue }
            guard let span = o.layers else {
                whole += 1
                continue
            }
            bySpan[span, default: ([], [])].owners.insert(n.owner)
            bySpan[span, default: ([], [])].nodes.append(n.nodeKey)
        }
        // The most common layer count names the model's; spans of another count are listed but chain with nothing.
        let totals = Dictionary(grouping: bySpan.keys, by: \.total).mapValues(\.count)
        let total = totals.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
        let spans = bySpan.map { Span(layers: $0.key, operators: $0.value.owners.count, nodes: $0.value.nodes.sorted()) }
            .sorted { ($0.layers.start, $0.layers.end, $0.layers.total) < ($1.layers.start, $1.layers.end, $1.layers.total) }
        var gaps: [LayerSpan] = []
        var chainable = false
        if let total {
            let mine = spans.map(\.layers).filter { $0.total == total }
            var covered = [Bool](repeating: false, count: Int(total))
            for s in mine { for l in s.range { covered[l] = true } }
            var l = 0
            while l < covered.count {
                if covered[l] { l += 1; continue }
                var e = l
                while e < covered.count && !covered[e] { e += 1 }
                gaps.append(LayerSpan(start: UInt32(l), end: UInt32(e), total: total))
                l = e
            }
            // Layers reachable from 0 by consecutive spans.
            var reached: Set<UInt32> = [0]
            var frontier: [UInt32] = [0]
            while let at = frontier.popLast() {
                for s in mine where s.start == at && !reached.contains(s.end) {
                    reached.insert(s.end)
                    frontier.append(s.end)
                }
            }
            chainable = reached.contains(total)
        }
        return ShardCoverage(model: model, layers: total, wholeNodes: whole, spans: spans, gaps: gaps, chainable: chainable)
    }

    /// One sentence for people: what serves the model and what is missing.
    public var summary: String {
        var parts: [String] = []
        parts.append(wholeNodes == 1 ? "1 whole-model node" : "\(wholeNodes) whole-model nodes")
        if let layers {
            parts.append("shards of \(spans.count) span\(spans.count == 1 ? "" : "s") over \(layers) layers")
            if !gaps.isEmpty { parts.append("no shard serves layers " + gaps.map(\.description).joined(separator: ", ")) }
            parts.append(chainable ? "a pipeline can be built" : "no chain of shards covers every layer")
        }
        return parts.joined(separator: "; ")
    }
}
