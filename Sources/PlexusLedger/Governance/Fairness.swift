import PlexusCore

/// Concentration measures of a voting-power distribution. Analysis only
/// (floating point), never consensus.
public struct Concentration: Sendable, Codable, Hashable {
    /// Voters with any power.
    public var voters: Int
    /// Gini coefficient of power over all holders (0 = equal, → 1 = one holds all).
    public var gini: Double
    /// The fewest voters whose power together exceeds half the total.
    public var nakamoto: Int
    /// Share of all power held by the top 1% of holders ranked by power.
    public var top1PercentShare: Double
    /// Share of all power held by the 1% of holders with the most tokens.
    public var wealthiest1PercentShare: Double

    /// Measures `power` (one entry per holder, in the same order as `tokens`).
    public static func measure(power: [Double], tokens: [UInt64]) -> Concentration {
        let n = power.count
        let total = power.reduce(0, +)
        guard n > 0, total > 0 else {
            return Concentration(voters: 0, gini: 0, nakamoto: 0, top1PercentShare: 0, wealthiest1PercentShare: 0)
        }
        let ascending = power.sorted()
        var weighted = 0.0
        for (i, x) in ascending.enumerated() { weighted += Double(i + 1) * x }
        let gini = max(0, (2 * weighted) / (Double(n) * total) - Double(n + 1) / Double(n))
        var running = 0.0, nakamoto = 0
        for x in ascending.reversed() {
            running += x
            nakamoto += 1
            if running > total / 2 { break }
        }
        let top = max(1, n / 100)
        let topShare = ascending.suffix(top).reduce(0, +) / total
        let richest = tokens.indices.sorted { tokens[$0] != tokens[$1] ? tokens[$0] > tokens[$1] : $0 < $1 }.prefix(top)
        let wealthyShare = richest.reduce(0.0) { $0 + power[$1] } / total
        return Concentration(voters: power.filter { $0 > 0 }.count, gini: gini, nakamoto: nakamoto,
                             top1PercentShare: topShare, wealthiest1PercentShare: wealthyShare)
    }
}

/// Voting power per scheme for a distribution of holders.
public enum FairnessAnalysis {
    /// One holder: tokens (staked) and reputation points.
    public struct Holder: Sendable, Codable, Hashable {
        public var tokens: UInt64
        public var reputation: UInt64
        public init(tokens: UInt64, reputation: UInt64 = 0) {
            self.tokens = tokens
            self.reputation = reputation
        }
    }

    /// Power of each holder under `scheme`.
    ///
    /// - token: stake (delegation only moves it, so the distribution is the same).
    /// - quadratic: √stake, a voter's weight before the common rescale.
    /// - reputation: points.
    /// - member: one each.
    /// - council: one each for the `councilSize` holders with the most
    ///   stake-weighted approval — with self-approval, the largest holders.
    /// - sortition: one each for `councilSize` members drawn by lot (seeded).
    public static func power(_ holders: [Holder], scheme: VotingScheme, councilSize: Int, seed: [UInt8]) -> [Double] {
        switch scheme {
        case .token: return holders.map { Double($0.tokens) }
        case .quadratic: return holders.map { Double(Tally.isqrt(UInt128($0.tokens))) }
        case .reputation: return holders.map { Double($0.reputation) }
        case .member: return holders.map { _ in 1 }
        case .council:
            let order = holders.indices.sorted { holders[$0].tokens != holders[$1].tokens ? holders[$0].tokens > holders[$1].tokens : $0 < $1 }
            var p = [Double](repeating: 0, count: holders.count)
            for i in order.prefix(councilSize) { p[i] = 1 }
            return p
        case .sortition, .assembly:
            var lot = LotStream(seed: seed)
            var p = [Double](repeating: 0, count: holders.count)
            for i in lot.draw(councilSize, from: Array(holders.indices)) { p[i] = 1 }
            return p
        }
    }

    /// A distribution where `whaleShare` of the tokens sit with 1% of `count`
    /// holders; everything else is spread evenly with a deterministic ±50%
    /// variation; reputation (points from serving) is independent of tokens.
    public static func whaleHeavy(count: Int, totalTokens: UInt64, whaleShare: Double, seed: [UInt8]) -> [Holder] {
        let whales = max(1, count / 100)
        let whaleTokens = UInt64(Double(totalTokens) * whaleShare)
        let rest = totalTokens - whaleTokens
        var lot = LotStream(seed: seed)
        var holders: [Holder] = []
        for _ in 0..<whales { holders.append(Holder(tokens: whaleTokens / UInt64(whales))) }
        let others = count - whales
        var weights: [UInt64] = []
        for _ in 0..<others { weights.append(50 + lot.uniform(101)) }
        let wsum = weights.reduce(0, +)
        for w in weights { holders.append(Holder(tokens: rest / wsum * w)) }
        for i in holders.indices { holders[i].reputation = 1 + lot.uniform(100) }
        return holders
    }
}
