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
    /// Subtracted once from the logit of every token seen in the window (OpenAI's `presence_penalty`).
    public var presencePenalty: Double = 0
    /// Subtracted from a token's logit once per time it appears in the window (`frequency_penalty`).
    public var frequencyPenalty: Double = 0
    /// Added to the logits of these tokens before anything else (`logit_bias`), by ascending id.
    public var logitBias: [LogitBias] = []

    /// A bias on one token's logit.
    public struct LogitBias: Sendable, Hashable, Codable {
        public var token: TokenID
        public var bias: Double
        public init(token: TokenID, bias: Double) {
            self.token = token
            self.bias = bias
        }
    }

    public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, minP: Double = 0,
                repetitionPenalty: Double = 1, repetitionWindow: Int = 64, seed: UInt64 = 0,
                presencePenalty: Double = 0, frequencyPenalty: Double = 0, logitBias: [LogitBias] = []) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.logitBias = logitBias.sorted { $0.token < $1.token }
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
        guard presencePenalty.isFinite, (-2...2).contains(presencePenalty) else { throw PlexusError(.outOfRange, "presence_penalty must be in -2...2") }
        guard frequencyPenalty.isFinite, (-2...2).contains(frequencyPenalty) else { throw PlexusError(.outOfRange, "frequency_penalty must be in -2...2") }
        guard logitBias.count <= 1_024 else { throw PlexusError(.outOfRange, "logit_bias takes up to 1024 tokens") }
        for b in logitBias where !(b.bias.isFinite && (-100...100).contains(b.bias)) || b.token < 0 {
            throw PlexusError(.outOfRange, "logit_bias values must be in -100...100 for token ids ≥ 0")
        }
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
        sample(adjusted: adjust(logits, history: history), index: index)
    }

    /// The logits as the draw sees them: biased, then penalised for the tokens in the window
    /// (repetition as llama.cpp applies it, presence and frequency as OpenAI defines them).
    public func adjust(_ logits: [Float], history: ArraySlice<TokenID>) -> [Float] {
        let p = parameters
        var adjusted = logits
        for b in p.logitBias where Int(b.token) < adjusted.count { adjusted[Int(b.token)] += Float(b.bias) }
        let penalised = p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0
        if penalised && p.repetitionWindow > 0 {
            var counts: [TokenID: Int] = [:]
            var order: [TokenID] = []
            for t in history.suffix(p.repetitionWindow) where t >= 0 && Int(t) < adjusted.count {
                if counts[t] == nil { order.append(t) }
                counts[t, default: 0] += 1
            }
            let penalty = Float(p.repetitionPenalty)
            for t in order {
                var l = adjusted[Int(t)]
                if p.repetitionPenalty != 1 { l = l > 0 ? l / penalty : l * penalty }
                if p.presencePenalty != 0 || p.frequencyPenalty != 0 {
                    l -= Float(p.presencePenalty) + Float(p.frequencyPenalty) * Float(counts[t]!)
                }
                adjusted[Int(t)] = l
            }
        }
        return adjusted
    }

    /// The token drawn at `index` from logits already adjusted.
    public func sample(adjusted: [Float], index: UInt64) -> TokenID {
        let p = parameters
        let adjusted = adjusted
        if p.temperature == 0 {
            var best = 0
            for i in 1..<adjusted.count where adjusted[i] > adjusted[best] { best = i }
            return TokenID(best)
        }
        // Candidates by logit, highest first, ties by id: a total order.
        var order = Self.rank(adjusted)
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

    /// The log-probability of `token` and of the `top` most likely tokens under the softmax of
    /// `adjusted` (before temperature and truncation, as OpenAI reports them), most likely first.
    public static func logprobs(_ adjusted: [Float], token: TokenID, top: Int) -> (Float, [(TokenID, Float)]) {
        var m = -Float.infinity
        for l in adjusted where l > m { m = l }
        var sum = 0.0
        for l in adjusted { sum += exp(Double(l - m)) }
        let logZ = Double(m) + log(sum)
        func lp(_ i: Int) -> Float { Float(Double(adjusted[i]) - logZ) }
        var best: [(TokenID, Float)] = []
        if top > 0 {
            // A partial selection: the `top` highest, ties by lower id.
            for i in adjusted.indices {
                let l = adjusted[i]
                if best.count == top, let last = best.last, !(l > adjusted[Int(last.0)]) { continue }
                var at = best.count
                while at > 0 && l > adjusted[Int(best[at - 1].0)] { at -= 1 }
                best.insert((TokenID(i), 0), at: at)
                if best.count > top { best.removeLast() }
            }
            best = best.map { ($0.0, lp(Int($0.0))) }
        }
        return (lp(Int(token)), best)
    }

    /// Token ids by logit, highest first, ties by lower id — the order
    /// `referenceRank` gives, found by a radix sort of one integer key per token
    /// (the logit's bits mapped so that integer order is float order, reversed,
    /// then the id) instead of comparisons through a closure: several times
    /// faster on a vocabulary of 49,152. Zero of either sign is one value, as `==` has it; a
    /// NaN (never in a sound model's logits) sorts last.
    static func rank(_ logits: [Float]) -> [Int] {
        var keys = [UInt64](repeating: 0, count: logits.count)
        keys.withUnsafeMutableBufferPointer { kp in
            for (i, l) in logits.enumerated() {
                let v = l.isNaN ? -Float.infinity : l + 0  // + 0 turns -0 into +0
                let bits = v.bitPattern
                let ascending = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
                kp[i] = UInt64(~ascending) << 32 | UInt64(UInt32(truncatingIfNeeded: i))
            }
        }
        radixSort(&keys)
        return keys.map { Int(UInt32(truncatingIfNeeded: $0)) }
    }

    /// Sorts ascending, a byte at a time from the lowest (least-significant-digit radix
    /// sort, stable per pass), skipping bytes every key shares.
    static func radixSort(_ keys: inout [UInt64]) {
        let n = keys.count
        guard n > 1 else { return }
        var other = [UInt64](repeating: 0, count: n)
        var counts = [Int](repeating: 0, count: 256)
        for byte in 0..<8 {
            let shift = UInt64(byte * 8)
            counts.withUnsafeMutableBufferPointer { c in
                for i in 0..<256 { c[i] = 0 }
                keys.withUnsafeBufferPointer { k in for key in k { c[Int((key >> shift) & 0xFF)] += 1 } }
            }
            if counts.contains(n) { continue }  // one value of this byte: nothing moves
            var start = 0
            for i in 0..<256 {
                let c = counts[i]
                counts[i] = start
                start += c
            }
            counts.withUnsafeMutableBufferPointer { c in
                keys.withUnsafeBufferPointer { k in
                    other.withUnsafeMutableBufferPointer { o in
                        for key in k {
                            let b = Int((key >> shift) & 0xFF)
                            o[c[b]] = key
                            c[b] += 1
                        }
                    }
                }
            }
            swap(&keys, &other)
        }
    }

    /// The order by comparisons, as the sampler first computed it: the reference `rank` is held to.
    static func referenceRank(_ logits: [Float]) -> [Int] {
        var order = Array(0..<logits.count)
        order.sort { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        return order
    }
}
