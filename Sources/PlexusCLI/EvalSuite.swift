import Foundation
import PlexusCore

/// The governed benchmark suite `plexus models evaluate` runs through the network: small
/// tasks with answers that parse (a number, or one word), asked greedily (temperature 0,
/// seed 0) so that a re-run gives the same answers. Its hash names it on the ledger.
enum EvalSuite {
    struct Task: Codable, Hashable {
        var prompt: String
        var answer: String
        /// "number": the first integer in the output must be the answer; "word": the answer must be one of the output's words.
        var kind: String
    }

    static let name = "plexus-basic-v2"
    static let maxTokens = 12

    static let tasks: [Task] = [
        Task(prompt: "What is 2 + 3? Answer with the number only.", answer: "5", kind: "number"),
        Task(prompt: "What is 7 + 8? Answer with the number only.", answer: "15", kind: "number"),
        Task(prompt: "What is 10 - 4? Answer with the number only.", answer: "6", kind: "number"),
        Task(prompt: "What is 3 times 4? Answer with the number only.", answer: "12", kind: "number"),
        Task(prompt: "How many days are in a week? Answer with the number only.", answer: "7", kind: "number"),
        Task(prompt: "How many legs does a spider have? Answer with the number only.", answer: "8", kind: "number"),
        Task(prompt: "How many months are in a year? Answer with the number only.", answer: "12", kind: "number"),
        Task(prompt: "What is 100 divided by 10? Answer with the number only.", answer: "10", kind: "number"),
        Task(prompt: "What is the capital of France? Answer with one word.", answer: "paris", kind: "word"),
        Task(prompt: "What is the capital of Japan? Answer with one word.", answer: "tokyo", kind: "word"),
        Task(prompt: "What is the capital of Italy? Answer with one word.", answer: "rome", kind: "word"),
        Task(prompt: "What color is the sky on a clear day? Answer with one word.", answer: "blue", kind: "word"),
        Task(prompt: "What is the opposite of hot? Answer with one word.", answer: "cold", kind: "word"),
        Task(prompt: "What is frozen water called? Answer with one word.", answer: "ice", kind: "word"),
        Task(prompt: "Which planet do we live on? Answer with one word.", answer: "earth", kind: "word"),
        Task(prompt: "What animal says meow? Answer with one word.", answer: "cat", kind: "word"),
    ]

    /// SHA-256 of the tasks' JSON (sorted keys): what the ledger records as the suite.
    static var hash: Hash256 {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Hash256.of(Array((try? e.encode(tasks)) ?? Data()))
    }

    /// Whether `output` answers `task` right.
    static func correct(_ output: String, _ task: Task) -> Bool {
        let text = output.lowercased()
        if task.kind == "number" {
            guard let r = text.range(of: "-?[0-9]+", options: .regularExpression) else { return false }
            return String(text[r]) == task.answer
        }
        return text.split(whereSeparator: { !$0.isLetter }).contains { String($0) == task.answer }
    }
}
