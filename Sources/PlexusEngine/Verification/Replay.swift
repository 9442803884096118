import PlexusCore

/// A generation to check: the prompt, the output a node claims, and everything that
/// decided it (sampling with its seed, stop strings, the token limit).
public struct ReplayRequest: Sendable, Hashable, Codable {
    public var prompt: [TokenID]
    public var output: [TokenID]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    public var stop: [String]
    public var commitmentInterval: Int
    /// Also the commitments over the first this-many positions (a node that continued an
    /// answer ran a prefix of the whole sequence; each share's receipt commits to its run).
    public var commitmentsAt: [Int]
    /// The request's `response_format` (JSON text), whose constraint chose among the tokens.
    public var responseFormat: String?

    public init(prompt: [TokenID], output: [TokenID], maxTokens: Int, sampling: SamplingParameters, stop: [String] = [],
                commitmentInterval: Int = Commitment.defaultInterval, commitmentsAt: [Int] = [], responseFormat: String? = nil) {
        self.responseFormat = responseFormat
        self.prompt = prompt
        self.output = output
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stop = stop
        self.commitmentInterval = commitmentInterval
        self.commitmentsAt = commitmentsAt
    }
}

/// What re-execution found.
public struct ReplayReport: Sendable, Hashable, Codable {
    /// Where the claimed output first departs from the engine's: `position` indexes the
    /// output (`output.count`: after its end); a nil token is the end of the sequence
    /// (expected: the engine would have stopped; got: the output stopped).
    public struct Mismatch: Sendable, Hashable, Codable {
        public var position: Int
        public var expectedToken: TokenID?
        public var gotToken: TokenID?
    }

    public var firstMismatch: Mismatch?
    /// How the engine's own run ends (up to the first mismatch).
    public var finish: FinishReason
    /// The commitment the engine's run makes (up to the first mismatch).
    public var commitment: Commitment
    /// The commitments over the prefixes asked for (nil past what was re-executed).
    public var commitmentsAt: [Commitment?]

    public var ok: Bool { firstMismatch == nil }
}

extension Generator {
    /// Re-executes a claimed generation in one prefill over prompt and output and checks
    /// every output token against the sampler's choice from its logits and the
    /// counter-based draw for (seed, position), the stop strings, the token limit and,
    /// after the last token, the end of sequence. Exact: the engine's logits do not
    /// depend on batch composition or thread count, so an honest output always passes.
    public func replay(_ r: ReplayRequest) throws -> ReplayReport {
        var chooser = try TokenChoice(r.sampling, responseFormat: r.responseFormat, model: model)
        let c = model.config, tok = model.tokenizer
        guard !r.prompt.isEmpty else { throw PlexusError(.malformed, "the prompt is empty") }
        guard r.maxTokens >= 1, r.maxTokens <= c.contextLength else { throw PlexusError(.outOfRange, "max tokens must be 1...\(c.contextLength)") }
        guard r.prompt.count < c.contextLength else { throw PlexusError(.outOfRange, "the prompt has \(r.prompt.count) tokens; the context is \(c.contextLength)") }
        for t in r.prompt where t < 0 || Int(t) >= c.vocabSize { throw PlexusError(.outOfRange, "prompt token \(t) is outside the vocabulary") }
        let p = r.prompt.count
        let capacity = min(c.contextLength, p + r.maxTokens + 1)
        // The run is re-executed as far as the output is possible at all: tokens outside the
        // vocabulary, past the token limit or past the context are a mismatch where they stand.
        var usable = 0
        while usable < r.output.count, usable < r.maxTokens, p + usable < capacity, r.output[usable] >= 0, Int(r.output[usable]) < c.vocabSize {
            usable += 1
        }
        let sequence = r.prompt + r.output[..<usable]
        let state = try InferenceState(model: model, capacity: sequence.count, threads: threads)
        var hidden = try state.embed(sequence)
        try state.runLayers(&hidden, layers: 0..<c.layers)
        let normed = state.finalNormed(hidden)

        var mismatch: ReplayReport.Mismatch?
        var finish = FinishReason.length
        var decoder = StreamDecoder(tokenizer: tok)
        var text = ""
        var checked = 0  // output tokens that matched
        // Logits for the positions that choose output tokens, in batches.
        var batch: [Float] = [], batchStart = 0
        let vocab = c.vocabSize
        func logits(choosing j: Int) -> ArraySlice<Float> {
            if j < batchStart || j >= batchStart + batch.count / vocab {
                batchStart = j
                let end = min(usable, j + InferenceState.batchLimit - 1)
                batch = state.logits(ofNormed: normed, rows: (p - 1 + j)..<(p + end))
            }
            let o = (j - batchStart) * vocab
            return batch[o..<(o + vocab)]
        }
        scan: for j in 0...usable {
            let running = j < r.maxTokens && p + j < capacity
            if j == usable {
                if j < r.output.count {
                    // A token the engine could not have produced here at all.
                    let expected: TokenID? = running ? try chooser.choose(Array(logits(choosing: j)), history: sequence[...], index: UInt64(p + j)).0 : nil
                    mismatch = .init(position: j, expectedToken: expected.flatMap { $0 == tok.eos || tok.isControl($0) ? nil : $0 }, gotToken: r.output[j])
                    break scan
                }
                guard running else { break scan }  // the limit: finish = length
                let next = try chooser.choose(Array(logits(choosing: j)), history: sequence[...], index: UInt64(p + j)).0
                if next == tok.eos || tok.isControl(next) {
                    finish = .endOfSequence
                } else {
                    mismatch = .init(position: j, expectedToken: next, gotToken: nil)
                }
                break scan
            }
            let expected = try chooser.choose(Array(logits(choosing: j)), history: sequence[..<(p + j)], index: UInt64(p + j)).0
            if expected == tok.eos || tok.isControl(expected) {
                mismatch = .init(position: j, expectedToken: nil, gotToken: r.output[j])
                break scan
            }
            guard expected == r.output[j] else {
                mismatch = .init(position: j, expectedToken: expected, gotToken: r.output[j])
                break scan
            }
            checked = j + 1
            chooser.accept(r.output[j])
            text += decoder.push(r.output[j])
            if r.stop.contains(where: { !$0.isEmpty && text.contains($0) }) {
                finish = .stop
                if j + 1 < r.output.count { mismatch = .init(position: j + 1, expectedToken: nil, gotToken: r.output[j + 1]) }
                break scan
            }
        }
        // The positions the engine itself runs: the prompt and every output token but the
        // last, which goes through the model only when its logits end the sequence.
        let committed = mismatch == nil && finish == .endOfSequence ? p + checked : p + max(0, checked - 1)
        var builder = CommitmentBuilder(interval: r.commitmentInterval)
        var whole: Commitment?
        var prefixes = [Commitment?](repeating: nil, count: r.commitmentsAt.count)
        let rows = sequence.count
        normed.withUnsafeBufferPointer { np in
            for i in 0...rows {
                if i == committed { whole = builder.finish() }
                for (k, n) in r.commitmentsAt.enumerated() where n == i { prefixes[k] = builder.finish() }
                guard i < rows else { break }
                builder.add(UnsafeBufferPointer(rebasing: np[(i * c.embedding)..<((i + 1) * c.embedding)]))
            }
        }
        return ReplayReport(firstMismatch: mismatch, finish: finish, commitment: whole ?? builder.finish(), commitmentsAt: prefixes)
    }
}
