import ArgumentParser
import Foundation
import Logging
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusVerifier

struct VerifierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verifier", abstract: "Check other nodes' work by exact re-execution, for a fee per verdict.",
        subcommands: [Start.self, Status.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stake, register as a verifier, and re-execute the checks and disputes the ledger assigns.",
            discussion: """
            The verifier follows the ledger; for each check assigned to it, it fetches the transcript from the gateway \
            (signing its request), re-executes it in one prefill and posts a verdict: a pass carries each share's last \
            chunk hash with its Merkle path to the root the node signed, which only a re-execution produces; a failure \
            opens a dispute. On a dispute's committee it commits a sealed vote, then reveals it.
            """)

        @OptionGroup var ledger: LedgerURLOptions
        @OptionGroup var keyOptions: KeyOptions
        @Option(name: .long, help: "Gateway to fetch transcripts from.") var gateway: String = "http://127.0.0.1:8080"
        @Option(name: .long, help: "Model store name or .gguf path of the model to verify.") var model: String = "smollm2-135m"
        @Option(name: .long, help: "Model store directory.") var store: String?
        @Option(name: .long, help: "Stake to bond first if the account holds less than the verifier minimum, in PLX.") var stake: Amount?
        @Option(name: .long, help: "Engine threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(name: .long, help: "Drill (development chains only): lazy passes everything without running the model.") var adversary: String?
        @Flag(name: .long, help: "Run at a lower CPU priority, so that checking yields to serving on a shared machine.") var background = false
        @Option(name: .long, help: "Seconds between service reports: the verifier probes every node and records on the ledger which answered (0: never).") var reportEvery: Double = 30
        @OptionGroup var log: LogOptions

        func validate() throws {
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1...256") }
            guard reportEvery == 0 || (reportEvery >= 0.1 && reportEvery <= 3_600) else { throw ValidationError("--report-every must be 0 or 0.1...3600") }
            if let adversary, adversary != "lazy" { throw ValidationError("--adversary must be lazy") }
        }

        /// Nice 10 for every thread there is (on Linux a priority is a thread's; later threads inherit it).
        static func lowerPriority() {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            for t in tasks { if let tid = UInt32(t) { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, 10) } }
        }

        func run() async throws {
            Bootstrap.run(level: log.level)
            StopSignals.followParent()
            if background { Self.lowerPriority() }
            let key = try keyOptions.load()
            let client = LedgerClient(baseURL: ledger.ledger)
            let status = try await client.status()
            if adversary != nil && !status.chainId.hasSuffix("-dev") && status.chainId != "plexus-local" && !status.chainId.hasPrefix("plexus-test") {
                throw ValidationError("--adversary is a drill for development chains; '\(status.chainId)' is not one")
            }
            let params = try await client.params()
            let minimum = params.params.first { $0.name == "minVerifierStake" }?.value ?? 0
            let staked = try await client.account(key.address).staked
            if staked.units < max(1, minimum) {
                let amount = stake ?? Amount(units: max(1, minimum) - staked.units)
                _ = try await client.send(.stake(amount: amount), from: key)
            }
            let path = try ModelStore(directory: store).resolve(model)
            let hash = try Hash256(hex: try ModelStore.sha256(ofFile: path))
            let checker = try TranscriptCheck(model: try LlamaModel(path: path), modelHash: hash, threads: threads)
            let logger = Logger(label: "plexus.verifier")
            let service = VerifierService(ledger: client, key: key, gateway: gateway, checker: checker,
                                          mode: adversary == "lazy" ? .lazy : .honest, log: logger)
            try await service.register()
            if adversary != nil { logger.warning("ADVERSARY DRILL: this verifier passes everything without running the model", metadata: ["mode": "lazy"]) }
            print("verifier \(key.address) checking \(model) for \(ledger.ledger) via \(gateway)\(adversary.map { " [adversary: \($0)]" } ?? "")")
            fflush(nil)
            let stopped = OnceFlag()
            _ = StopSignals.onStop { stopped.set() }
            // Health probes of every node, reported beside the gateways' measurements (a verifier is staked and accountable too).
            let sending = service.sending, me = key.address
            let reporting = Task {
                await ServiceReporter(ledger: client, meter: ServiceMeter(), everyMillis: UInt64(reportEvery * 1_000), owner: { me },
                                      send: { body in _ = try await sending.withLock { try await client.send(body, from: key, waitForCommit: false) } },
                                      refused: { n, error in logger.info("service report refused", metadata: ["samples": "\(n)", "error": "\(error)"]) }).run()
            }
            await service.run { stopped.isSet }
            reporting.cancel()
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A verifier's standing and work (or every verifier's standing).")
        @OptionGroup var ledger: LedgerURLOptions
        @Option(name: .long, help: "The verifier's address (default: every verifier).") var address: Address?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let client = LedgerClient(baseURL: ledger.ledger)
            if let address {
                struct View: Encodable { var standing: StandingView; var work: VerifierWorkView }
                let v = View(standing: try await client.standing(of: address), work: try await client.work(of: address))
                if json { return try printJSON(v) }
                let s = v.standing
                print("\(address): \(s.verifier ? "verifier" : "not a verifier"), staked \(s.staked), reputation \(String(format: "%.3f", s.reputation))\(s.jailed ? ", jailed until \(s.jailedUntil)" : "")")
                print("  verdicts \(s.verdicts), missed \(s.misses), faults \(s.faults); assigned now: \(v.work.checks.count) checks, \(v.work.disputes.count) disputes")
                return
            }
            let all = try await client.verifiers()
            if json { return try printJSON(all) }
            if all.isEmpty { print("no verifiers") }
            for s in all {
                print("\(s.account)  staked \(s.staked)  reputation \(String(format: "%.3f", s.reputation))  verdicts \(s.verdicts)  missed \(s.misses)  faults \(s.faults)\(s.jailed ? "  JAILED until \(s.jailedUntil)" : "")")
            }
        }
    }
}

struct ChallengeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "challenge", abstract: "Challenge a settled request's receipt with a bond, while its settlement is pending.",
        discussion: "A committee of verifiers drawn by lot re-executes it and votes. Upheld: the node is slashed and jailed, the requestor refunded, the bond returned with a share of the slash. Rejected: the bond goes to the node and the committee.")
    @Argument(help: "The request id (hex).") var requestId: String
    @Option(name: .long, help: "Bond, in PLX (at least challengeBondMin).") var bond: Amount
    @Option(name: .long, help: "Which share (receipt) of the request, for a request served by several nodes.") var share: UInt8 = 0
    @OptionGroup var ledger: LedgerURLOptions
    @OptionGroup var keyOptions: KeyOptions

    func run() async throws {
        let id = try Hash256(hex: requestId)
        let r = try await LedgerClient(baseURL: ledger.ledger).send(.challenge(requestId: id, share: share, bond: bond), from: try keyOptions.load())
        print("challenged \(id.hex) (share \(share)) with \(bond) bond in block \(r.height)")
    }
}

struct DisputesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disputes", abstract: "Disputes of receipts and how they ended.",
                                                    subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disputes, newest first.")
        @OptionGroup var ledger: LedgerURLOptions
        @Flag(name: .long, help: "Print JSON.") var json = false
        func run() async throws {
            let all = try await LedgerClient(baseURL: ledger.ledger).disputes()
            if json { return try printJSON(all) }
            if all.isEmpty { print("no disputes") }
            for d in all {
                print("\(d.requestId.hex.prefix(16))…  \(d.outcome)  accused \(d.accused.short)  challenger \(d.challenger.short)  bond \(d.bond)  slashed \(d.slashed)  opened at \(d.openedHeight)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One request's verification: its check and dispute.")
        @Argument(help: "The request id (hex).") var requestId: String
        @OptionGroup var ledger: LedgerURLOptions
        func run() async throws {
            guard let v = try await LedgerClient(baseURL: ledger.ledger).verification(try Hash256(hex: requestId)) else {
                throw PlexusError(.notFound, "request \(requestId.prefix(16)) has not been settled")
            }
            try printJSON(v)
        }
    }
}
