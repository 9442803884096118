import PlexusCore

/// A model's measured quality: an evaluator ran a benchmark suite through the network and
/// recorded how many tasks the model answered right, with the settled requests that produced
/// the answers (each one's receipts on the ledger, its transcript with the evaluator), so that
/// anyone can check it and re-run it.
public struct Evaluation: Sendable, Hashable, Codable, CanonicalCodable {
    /// SHA-256 of the suite's tasks (`EvalSuite`), and its name.
    public var suite: Hash256
    public var name: String
    public var evaluator: Address
    public var correct: UInt32
    /// One settled request per task, in the suite's order.
    public var requests: [Hash256]
    public var height: UInt64

    public static let maxTasks = 64
    /// Evaluations kept per model (the latest per evaluator and suite; the oldest go first).
    public static let maxPerModel = 32

    public var tasks: Int { requests.count }
    /// The share answered right, in basis points.
    public var scoreBps: UInt64 { requests.isEmpty ? 0 : UInt64(correct) * 10_000 / UInt64(requests.count) }

    public init(suite: Hash256, name: String, evaluator: Address, correct: UInt32, requests: [Hash256], height: UInt64) {
        self.suite = suite
        self.name = name
        self.evaluator = evaluator
        self.correct = correct
        self.requests = requests
        self.height = height
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(suite); w.write(name); w.write(evaluator); w.write(correct); w.write(array: requests); w.write(height)
    }

    public init(from r: inout CanonicalReader) throws {
        suite = try r.readHash()
        name = try r.readString(limit: Registry.maxName)
        evaluator = try r.readAddress()
        correct = try r.readUInt32()
        requests = try r.readArray(of: Hash256.self, limit: Self.maxTasks)
        height = try r.readUInt64()
    }
}

extension LedgerState {
    /// Checks a `record_evaluation` from `from` and returns the model's evaluations with it in
    /// place, changing nothing: the evaluator has staked at least `minVerifierStake` and is not
    /// jailed; 1...64 distinct requests, each settled (not refunded) for this model with the
    /// evaluator as requestor; at most as many right answers as tasks.
    func planEvaluation(_ e: Evaluation, model: String, from: Address) throws -> [Evaluation] {
        guard models[model] != nil else { throw PlexusError(.notFound, "model '\(model.prefix(64))' is not registered") }
        guard !e.name.isEmpty, e.name.utf8.count <= Registry.maxName else { throw PlexusError(.malformed, "a suite's name is 1...\(Registry.maxName) bytes") }
        guard account(from).staked.units >= params[.minVerifierStake], !standing(from).isJailed(at: height) else {
            throw PlexusError(.invalidState, "an evaluator stakes at least \(Amount(units: params[.minVerifierStake])) and is not jailed")
        }
        guard (1...Evaluation.maxTasks).contains(e.requests.count), Set(e.requests).count == e.requests.count else {
            throw PlexusError(.outOfRange, "an evaluation names 1...\(Evaluation.maxTasks) distinct requests")
        }
        guard Int(e.correct) <= e.requests.count else { throw PlexusError(.outOfRange, "\(e.correct) right of \(e.requests.count) tasks") }
        for id in e.requests {
            guard let s = settlements[id], s.status != .refunded else { throw PlexusError(.notFound, "request \(id.hex.prefix(16)) is not settled") }
            guard s.requestor == from, s.model == model else {
                throw PlexusError(.invalidState, "request \(id.hex.prefix(16)) is not \(from.short)'s request to '\(model.prefix(64))'")
            }
        }
        var list = (evaluations[model] ?? []).filter { $0.evaluator != from || $0.suite != e.suite }
        list.append(Evaluation(suite: e.suite, name: e.name, evaluator: from, correct: e.correct, requests: e.requests, height: height))
        if list.count > Evaluation.maxPerModel { list.removeFirst(list.count - Evaluation.maxPerModel) }
        return list
    }
}
