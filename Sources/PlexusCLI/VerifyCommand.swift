import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine
import PlexusVerifier
import PlexusWire

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check a transcript by exact re-execution; exit status 0 only when everything matches.",
        discussion: """
        First the binding: every receipt signed by its node over the transcript's request (continued where its \
        share starts) and over its share of the output; then one prefill over prompt and output, each output token \
        checked against the sampler's choice from the logits and the draw for (seed, position), the stop strings, the \
        token limit and the end of sequence, and the commitment recomputed. A transcript comes from \
        `GET /v1/receipts/{id}/transcript` on a gateway.
        """)

    @Option(name: .long, help: "Transcript file (JSON).") var transcript: String
    @Option(name: .long, help: "Model name or .gguf path (its SHA-256 must be the transcript's model hash).") var model: String = "smollm2-135m"
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Option(name: .long, help: "Threads for the kernels.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(name: .long, help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1...256") }
    }

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: transcript) else { throw PlexusError(.notFound, "no transcript at \(transcript)") }
        let t = try Transcript.decode(Array(data))
        let path = try ModelStore(directory: store).resolve(model)
        let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
        let report = try TranscriptCheck(model: try LlamaModel(path: path), modelHash: hash, threads: threads).check(t)
        if json {
            try printJSON(report)
        } else {
            print(report.ok ? "ok: \(report.outputTokens) output tokens reproduced exactly, commitment \(report.commitmentRoot.hex.prefix(16))… over \(report.chunks) chunks"
                            : "FAILED: binding \(report.bindingOk ? "ok" : report.bindingProblems.joined(separator: "; ")), "
                                + "first mismatch \(report.firstMismatch.map { "at output token \($0.position): expected \($0.expectedToken.map(String.init) ?? "end"), got \($0.gotToken.map(String.init) ?? "end")" } ?? "none"), "
                                + "finish \(report.finishOk ? "ok" : "differs")")
        }
        if !report.ok { throw ExitCode(1) }
    }
}
