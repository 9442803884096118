import Foundation
import PlexusCore

/// How to pick the next token.
public struct SamplingParameters: Sendable, Hashable, Codable {
    /// 0 means greedy (argmax, lowest id on ties).
    public var temperature: Double = 0
    /// Keep the k most likely tokens (0 = all).
    public var topK: Int = 0
    /// Keep the smallest set whose probability reaches p (1 = all).
    public var topP: Double = 1
    /// Drop tokens below minP × the top probability (0 = none).
    public var minP: Double = 0
    /// Divide positive logits (multiply negative ones) of recently seen tokens (1 = off).
    public var repetitionPenalty: Double = 1
    /// How many recent tokens the penalty looks at.
    public var repetitionWindow: Int = 64
    /// Seed of the counter-based random draws.
    public var seed: UInt64 = 0

    public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, minP: Double = 0,
                repetitionPenalty: Double = 1, repetitionWindow: Int = 64, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    /// Throws `outOfRange` naming the first parameter outside its range.
    public func validate() throws {
        guard temperature.isFinite, (0...100).contains(temperature) else { throw PlexusError(.outOfRange, "temperature must be in 0...100") }
        guard (0...1_000_000).contains(topK) else { throw PlexusError(.outOfRange, "top_k must be in 0...1000000") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw PlexusError(.outOfRange, "top_p must be in (0, 1]") }
        guard minP.isFinite, (0...1).contains(minP) else { throw PlexusError(.outOfRange, "min_p must be in 0...1") }
        guard repetitionPenalty.isFinite, (0.01...100).contains(repetitionPenalty) else {
            throw PlexusError(.outOfRange, "repetition_penalty must be in 0.01...100")
        }
        guard (0...100_000).contains(repetitionWindow) else { throw PlexusError(.outOfRange, "repetition window must be in 0...100000") }
    }
}

/// Picks tokens from logits. Pure: the draw for position `i` depends only on
/// (seed, i), so any node holding the same logits and history reproduces it,
/// and a sequence can be continued elsewhere exactly.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters

    public init(_ parameters: SamplingParameters) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// A uniform number in [0, 1) for draw `index` under `seed` (SplitMix64 of the pair).
    public static func uniform(seed: UInt64, index: UInt64) -> Double {
        var z = seed &+ (index &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-53
    }

    /// The token at position `index` given the logits and the tokens so far.
    public func sample(_ logits: [Float], history: ArraySlice<TokenID>, index: UInt64) -> TokenID {
        let p = parameters
        var adjusted = logits
        if p.repetitionPenalty != 1 && p.repetitionWindow > 0 {
            let penalty = Float(p.repetitionPenalty)
            var seen = Set<TokenID>()
            for t in history.suffix(p.repetitionWindow) where t >= 0 && Int(t) < adjusted.count && seen.insert(t).inserted {
                let l = adjusted[Int(t)]
                adjusted[Int(t)] = l > 0 ? l / penalty : l * penalty
            }
        }
        if p.temperature == 0 {
            var best = 0
            for i in 1..<adjusted.count where adjusted[i] > adjusted[best] { best = i }
            return TokenID(best)
        }
        // Candidates by logit, highest first, ties by id: a total order.
        var order = Array(0..<adjusted.count)
        order.sort { adjusted[$0] != adjusted[$1] ? adjusted[$0] > adjusted[$1] : $0 < $1 }
        if p.topK > 0 && p.topK < order.count { order.removeSubrange(p.topK...) }
        let top = Double(adjusted[order[0]])
        var probs = order.map { exp((Double(adjusted[$0]) - top) / p.temperature) }
        var total = probs.reduce(0, +)
        if p.topP < 1 {
            var cumulative = 0.0
            var keep = probs.count
            for (i, q) in probs.enumerated() {
                cumulative += q / total
                if cumulative >= p.topP { keep = i + 1; break }
            }
            order.removeSubrange(keep...)
            probs.removeSubrange(keep...)
        }
        if p.minP > 0 {
            let floor = probs[0] * p.minP
            let keep = probs.firstIndex { $0 < floor } ?? probs.count
            order.removeSubrange(max(1, keep)...)
            probs.removeSubrange(max(1, keep)...)
        }
        total = probs.reduce(0, +)
        let u = Self.uniform(seed: p.seed, index: index) * total
        var acc = 0.0
        for (i, q) in probs.enumerated() {
            acc += q
            if u < acc { return TokenID(order[i]) }
        }
        return TokenID(order[order.count - 1])
    }
}
