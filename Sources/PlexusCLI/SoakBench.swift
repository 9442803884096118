import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusGateway
import PlexusLedger

/// A soak under chaos: a whole local network (the `plexus up` one, with a replicated ledger
/// and a verifier) under mixed load for M minutes, while a chaos loop kills a random process
/// (SIGKILL, then a restart on its data and port) or pauses it (SIGSTOP, then SIGCONT). Then
/// it checks what must hold whatever happened: every acknowledged transaction and every
/// receipt on the chain once, the money balanced to the base unit, nothing charged twice or
/// for a request that failed, every process's memory and descriptors flat after warm-up, and
/// the gateway answering throughout except while it was itself down.
struct SoakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "A local network under mixed load while processes are killed, paused and restarted at random; then checks money, receipts, memory and availability.")

    @Option(name: .long, help: "How long the load and the chaos last, in minutes.") var minutes: Double = 3
    @Option(name: .long, help: "engine (the default model, with a verifier) or echo (synthetic nodes, no verifier).") var backend = "engine"
    @Option(name: .long, help: "Ledger replicas ordered through etcd (1: one solo ledger; default: 3 when etcd is installed).") var replicas: Int?
    @Option(name: .long, help: "Clients sending requests at once.") var clients = 4
    @Option(name: .long, help: "Mean seconds between chaos events (0: no chaos).") var chaosEvery: Double = 6
    @Option(name: .long, help: "Seed of the load and the chaos (default: drawn, and reported).") var seed: UInt64?
    @Option(name: .long, help: "Where the network keeps its files (default: a fresh temporary folder, removed after a passing run).") var dir: String?
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard minutes > 0, minutes <= 24 * 60 else { throw ValidationError("--minutes must be in (0, 1440]") }
        guard ["engine", "echo"].contains(backend) else { throw ValidationError("--backend is engine or echo") }
        guard (1...64).contains(clients) else { throw ValidationError("--clients must be 1...64") }
        guard chaosEvery == 0 || (1...3_600).contains(chaosEvery) else { throw ValidationError("--chaos-every is 0 or 1...3600 seconds") }
        if let replicas {
            guard (1...5).contains(replicas) else { throw ValidationError("--replicas must be 1...5") }
            if replicas > 1, EtcdCluster.binary() == nil { throw ValidationError("--replicas needs the etcd binary (Debian: apt-get install etcd-server)") }
        }
    }

    // MARK: What the run records

    enum Kind: String, CaseIterable, Sendable { case chat, chatStream = "chat_stream", completion, completionStream = "completion_stream", hangUp = "hang_up", bad }

    enum Outcome: String, Sendable {
        /// Answered in full.
        case ok
        /// A request that should have been served was not (an error status, a cut stream, no answer).
        case failed
        /// A bad request refused with a 4xx, as it must be.
        case refused
        /// The client hung up after the first chunk.
        case hungUp = "hung_up"
        /// A bad request that was not refused.
        case unexpected
    }

    struct Entry: Sendable {
        var kind: Kind
        var start: Double
        var end: Double
        var status: Int
        var outcome: Outcome
        var ids: [Hash256]
        var detail: String
    }

    /// A process down (killed until it listened again, or paused until resumed).
    struct Down: Sendable {
        var name: String
        var action: String
        var from: Double
        var to: Double
    }

    struct Sample: Sendable {
        var t: Double
        var pid: Int32
        var rssKB: Int
        var fds: Int
        /// A node's prefix cache (its `plexus_node_prefix_cache_bytes`), bounded by its
        /// `--prefix-cache-mb`: memory that fills with use by design, not a leak.
        var cacheKB = 0
    }

    struct ProcessFigures: Codable {
        var name: String
        var incarnations: Int
        var kills: Int
        var pauses: Int
        /// The longest-lived incarnation, measured from the end of its warm-up.
        var measuredSeconds: Double
        var rssStartMB: Double
        var rssEndMB: Double
        /// Growth of resident memory less the growth of a node's bounded prefix cache.
        var rssGrowthMB: Double
        var cacheGrowthMB: Double
        var fdsStart: Int
        var fdsEnd: Int
        var fdGrowth: Int
    }

    struct Check: Codable {
        var name: String
        var ok: Bool
        var detail: String
    }

    struct Report: Codable {
        var benchmark = "soak"
        var seed: UInt64
        var minutes: Double
        var backend: String
        var replicas: Int
        var clients: Int
        var requests: Int
        var outcomes: [String: Int]
        var kinds: [String: Int]
        var kills: Int
        var pauses: Int
        var restarts: Int
        var transactionsAcknowledged: Int
        var requestsSettled: Int
        var chargedUnits: UInt64
        var gatewayAvailability: Double
        var processes: [ProcessFigures]
        /// The chaos, in order: when (seconds into the load), what, to whom, and for how long.
        var chaos: [String]
        var checks: [Check]
        var ok: Bool
        var directory: String?
    }

    /// What the load, the chaos and the sampler record, shared between their tasks.
    final class Log: Sendable {
        let t0 = ContinuousClock.now
        let entries = Locked<[Entry]>([])
        let downs = Locked<[Down]>([])
        let samples = Locked<[String: [Sample]]>([:])
        let acknowledged = Locked<[Hash256]>([])
        /// Each process's pid now, by name (the chaos loop updates it; the sampler reads it).
        let pids = Locked<[String: Int32]>([:])
        var now: Double {
            let d = ContinuousClock.now - t0
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
    }

    // MARK: Running it

    func run() async throws {
        let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
        let replicas = self.replicas ?? (EtcdCluster.binary() != nil ? 3 : 1)
        let dir = self.dir ?? NSTemporaryDirectory() + "plexus-soak-\(getpid())"
        let net = LocalNetwork(dir: dir, store: store, backend: backend, replicas: replicas, unlimitedKey: true)
        let quiet = json
        @Sendable func say(_ s: String) { if !quiet { print(s); fflush(nil) } }
        say("soak: \(minutes) min, backend \(backend), \(replicas) ledger replica\(replicas == 1 ? "" : "s"), \(clients) clients, chaos every ~\(chaosEvery) s, seed \(seed)")
        let info: LocalNetwork.Info
        do {
            info = try await net.start(gatewayPort: 0) { say("  " + $0) }
        } catch {
            net.stop()
            throw error
        }
        let log = Log()
        var report: Report
        do {
            report = try await soak(net, info, log, seed: seed, replicas: replicas, say: say)
        } catch {
            net.stop()
            throw error
        }
        report.directory = report.ok && self.dir == nil ? nil : dir
        if report.ok && self.dir == nil { try? FileManager.default.removeItem(atPath: dir) }
        if json {
            try printJSON(report)
        } else {
            for c in report.checks { print("  \(c.ok ? "ok  " : "FAIL") \(c.name): \(c.detail)") }
            print("soak \(report.ok ? "passed" : "FAILED"): \(report.requests) requests (\(report.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), \(report.kills) kills, \(report.pauses) pauses, \(report.transactionsAcknowledged) transactions\(report.directory.map { "; files in \($0)" } ?? "")")
        }
        if !report.ok { throw ExitCode(1) }
    }

    func soak(_ net: LocalNetwork, _ info: LocalNetwork.Info, _ log: Log, seed: UInt64, replicas: Int, say: (String) -> Void) async throws -> Report {
        let ledger = LedgerClient(baseURL: info.ledger)
        let requestorKey = try KeyFile.read(net.dir + "/keys/requestor.json")
        let escrowBefore = try await ledger.account(info.requestor).escrow
        log.pids.value = Dictionary(uniqueKeysWithValues: net.children.map { ($0.name, $0.process.processIdentifier) }
            + (net.etcd.map { e in e.members.indices.compactMap { i in e.pid(i).map { ("etcd-\(i + 1)", $0) } } } ?? []))
        let seconds = minutes * 60
        let end = log.now + seconds
        var rng = SeededGenerator(seed: seed)
        let clientSeeds = (0..<clients).map { _ in rng.next() }
        let chaosSeed = rng.next()
        say("load for \(Int(seconds)) s…")

        let nodePorts = net.ports.filter { $0.key.hasPrefix("node-") }
        let sampler = Task { await Self.sample(log, nodePorts: nodePorts, until: end) }
        let transfers = Task { await Self.transfer(log, ledger: ledger, key: requestorKey, until: end) }
        let chaos = Task { await Self.chaos(net, log, seed: chaosSeed, every: chaosEvery, until: end) }
        await withTaskGroup(of: Void.self) { group in
            for s in clientSeeds {
                group.addTask { await Self.client(log, info: info, model: net.model, seed: s, until: end) }
            }
        }
        await chaos.value
        await transfers.value
        sampler.cancel()
        await sampler.value
        let entries = log.entries.value, downs = log.downs.value
        // Every request and every chaos event, in the network's folder, for a look after a failure.
        let lines = entries.map { e in
            "\(String(format: "%.2f %.2f", e.start, e.end)) \(e.kind.rawValue) \(e.status) \(e.outcome.rawValue) \(e.ids.map { String($0.hex.prefix(16)) }.joined(separator: ",")) \(e.detail.prefix(300).replacingOccurrences(of: "\n", with: " "))"
        } + downs.map { "\(String(format: "%.2f %.2f", $0.from, $0.to)) chaos \($0.action) \($0.name)" }
        try? AtomicFile.write(Array(lines.sorted().joined(separator: "\n").utf8), to: net.dir + "/soak-events.txt")
        say("load done: \(entries.count) requests, \(downs.count) chaos events; waiting for every receipt to settle…")

        var checks: [Check] = []
        // Settlement: every record the gateway kept reaches a final state on the ledger.
        let receipts = try ReceiptStore(path: net.dir + "/gateway/receipts.sqlite", readOnly: true)
        let settleBy = Date().addingTimeInterval(300)
        var open = try receipts.records(in: ["unsettled", "submitted", "pending"], limit: 10)
        while !open.isEmpty && Date() < settleBy {
            try await Task.sleep(for: .milliseconds(500))
            open = try receipts.records(in: ["unsettled", "submitted", "pending"], limit: 10)
        }
        let records = try receipts.records(in: ["final", "rejected"], limit: 10_000_000)
        let notFinal = records.filter { $0.state != "final" }
        checks.append(Check(name: "every receipt settles", ok: open.isEmpty && notFinal.isEmpty,
                            detail: open.isEmpty && notFinal.isEmpty ? "\(records.count) requests final on the ledger"
                                : "\(open.count) still open (\(open.map(\.state).joined(separator: ","))), \(notFinal.count) rejected: \(notFinal.prefix(3).map { $0.reason ?? "" })"))

        // Money: what left the requestor's escrow is what the settlements charged, each once,
        // and each charge is exactly its payouts plus its fee.
        let settlements = try await ledger.settlements(records.map(\.requestId))
        var charged: UInt64 = 0
        var mismatched: [String] = []
        for r in records {
            guard let s = settlements[r.requestId] else { mismatched.append("\(r.requestId.hex.prefix(12)) has no settlement"); continue }
            if s.status == .final { charged += s.charge.units }
            if s.status != .final && s.status != .refunded { mismatched.append("\(r.requestId.hex.prefix(12)) is \(s.status.rawValue)") }
            if s.charge != r.charge { mismatched.append("\(r.requestId.hex.prefix(12)) charged \(s.charge.units), the gateway recorded \(r.charge.units)") }
            if s.charge.units != s.payouts.reduce(s.fee.units, { $0 + $1.amount.units }) { mismatched.append("\(r.requestId.hex.prefix(12)): payouts + fee ≠ charge") }
        }
        let escrowAfter = try await ledger.account(info.requestor).escrow
        let debited = escrowBefore.units >= escrowAfter.units ? escrowBefore.units - escrowAfter.units : 0
        checks.append(Check(name: "escrow debits = payouts + fees + royalties", ok: mismatched.isEmpty && debited == charged,
                            detail: "escrow fell by \(debited) units; \(settlements.count) settlements charged \(charged)" + (mismatched.isEmpty ? "" : "; " + mismatched.prefix(5).joined(separator: "; "))))

        let gatewayDown = downs.filter { $0.name == "gateway" }
        func overlaps(_ e: Entry, _ downs: [Down]) -> Bool { downs.contains { $0.from - 0.5 <= e.end && e.start <= $0.to + 1 } }
        func explained(_ e: Entry) -> Bool { overlaps(e, gatewayDown) }

        // Nothing is charged for a request that failed or was refused. One exception, charged as
        // served: a stream the gateway had answered in full and recorded (its receipt durable
        // before the last bytes go out) whose last bytes its own kill cut off — the work was
        // done, as a dropped stream is billed elsewhere.
        var chargedFailures: [String] = []
        var cutAfterRecording = 0
        let gatewayKills = gatewayDown.filter { $0.action == "kill" }
        for e in entries where e.outcome == .failed || e.outcome == .refused {
            for id in e.ids {
                let recorded = try receipts.get(id) != nil
                let settled = settlements[id] != nil ? true : try await ledger.settlement(id) != nil
                guard recorded || settled else { continue }
                if e.status == 200 && recorded && overlaps(e, gatewayKills) {
                    cutAfterRecording += 1
                    continue
                }
                chargedFailures.append("\(e.kind.rawValue) \(e.status) at \(Int(e.start)) s (\(id.hex.prefix(12)))")
            }
        }
        checks.append(Check(name: "no request charged after failing", ok: chargedFailures.isEmpty,
                            detail: chargedFailures.isEmpty ? "\(entries.filter { $0.outcome == .failed || $0.outcome == .refused }.count) failed or refused requests, none charged"
                                + (cutAfterRecording == 0 ? "" : " (besides \(cutAfterRecording) stream\(cutAfterRecording == 1 ? "" : "s") recorded in full and then cut by the gateway's kill, charged as served)")
                                : chargedFailures.prefix(5).joined(separator: "; ")))

        // Availability: every request that should have been served was, unless the gateway itself was down meanwhile.
        let shouldServe = entries.filter { $0.kind != .bad && $0.outcome != .hungUp }
        let unexplained = shouldServe.filter { $0.outcome == .failed && !explained($0) }
        let counted = shouldServe.filter { !explained($0) }
        let availability = counted.isEmpty ? 1 : Double(counted.filter { $0.outcome == .ok }.count) / Double(counted.count)
        checks.append(Check(name: "the gateway answers throughout", ok: unexplained.isEmpty && !counted.isEmpty,
                            detail: "\(counted.filter { $0.outcome == .ok }.count) of \(counted.count) served while the gateway was up"
                                + (unexplained.isEmpty ? "" : "; failed: " + unexplained.prefix(5).map { "\($0.kind.rawValue) \($0.status) at \(Int($0.start))–\(Int($0.end)) s: \($0.detail.prefix(160))" }.joined(separator: "; "))))
        let badServed = entries.filter { $0.outcome == .unexpected }
        checks.append(Check(name: "bad requests are refused", ok: badServed.isEmpty,
                            detail: "\(entries.filter { $0.kind == .bad }.count) bad requests" + (badServed.isEmpty ? ", each a 4xx" : "; not refused: " + badServed.prefix(3).map(\.detail).joined(separator: "; "))))

        // Memory and descriptors, per process, after warm-up.
        let figures = Self.figures(log.samples.value, downs: downs)
        // Only a process measured for two minutes past its warm-up says whether it stays flat: a
        // ledger's caches and state fill for its first minutes, and a short soak's lives are short.
        let measured = figures.filter { $0.measuredSeconds >= Self.measuredAtLeast }
        let grew = measured.filter { ($0.fdGrowth > Self.fdBound || $0.rssGrowthMB > max(Self.rssBoundMB, $0.rssStartMB * 0.25)) }
        checks.append(Check(name: "memory and descriptors flat after warm-up", ok: grew.isEmpty,
                            detail: grew.isEmpty ? "every process measured for \(Int(Self.measuredAtLeast)) s or more after its warm-up (\(measured.count) of \(figures.count)\(measured.isEmpty ? "; a longer soak measures them" : "")) within +\(Int(Self.rssBoundMB)) MB (or +25 %) and +\(Self.fdBound) descriptors over the second half of its life (a node's less its bounded prefix cache)"
                                : grew.map { "\($0.name): \(String(format: "%+.1f", $0.rssGrowthMB)) MB (prefix cache \(String(format: "%+.1f", $0.cacheGrowthMB)) MB besides), \($0.fdGrowth >= 0 ? "+" : "")\($0.fdGrowth) fds" }.joined(separator: "; ")))

        // The chain itself, offline: every replica replays to its stored root with the supply
        // conserved, they agree, and each acknowledged transaction and each receipt is on it once.
        net.stop()
        let acknowledged = log.acknowledged.value
        let dataDirs = replicas > 1 ? (1...replicas).map { net.dir + "/ledger-\($0)" } : [net.dir + "/ledger"]
        var tips: Set<Hash256> = [], heights: [UInt64] = [], replayProblems: [String] = []
        for d in dataDirs {
            let store = try BlockStore(path: d + "/ledger.sqlite")
            let r = try LedgerCommand.Verify.verify(store)
            if !r.ok || !r.supplyConserved { replayProblems.append("\(d): replay ok \(r.ok), supply conserved \(r.supplyConserved)") }
            heights.append(r.height)
        }
        let first = try BlockStore(path: dataDirs[0] + "/ledger.sqlite")
        let height = try first.load().state.height
        var txCount: [Hash256: Int] = [:], receiptCount: [String: Int] = [:]
        let wanted = Set(acknowledged)
        var h: UInt64 = 1
        while h <= height, let block = try first.block(at: h) {
            for tx in block.transactions {
                let hash = tx.hash
                if wanted.contains(hash) { txCount[hash, default: 0] += 1 }
                if let receipts = tx.body.settledReceipts {
                    for r in receipts { receiptCount["\(r.requestId.hex)/\(r.node.text)", default: 0] += 1 }
                }
            }
            h += 1
        }
        for d in dataDirs.dropFirst() {
            let s = try BlockStore(path: d + "/ledger.sqlite")
            if let b = try s.block(at: min(height, heights.min() ?? height)) { tips.insert(b.header.hash) }
        }
        if let b = try first.block(at: min(height, heights.min() ?? height)) { tips.insert(b.header.hash) }
        checks.append(Check(name: "every replica replays with the supply conserved", ok: replayProblems.isEmpty && tips.count <= 1,
                            detail: replayProblems.isEmpty ? "\(dataDirs.count) replica\(dataDirs.count == 1 ? "" : "s") at heights \(heights.map(String.init).joined(separator: ", ")), \(tips.count <= 1 ? "one chain" : "chains differ")"
                                : replayProblems.joined(separator: "; ")))
        let missing = acknowledged.filter { txCount[$0, default: 0] != 1 }
        checks.append(Check(name: "every acknowledged transaction on the chain once", ok: missing.isEmpty,
                            detail: "\(acknowledged.count) acknowledged" + (missing.isEmpty ? ", each once" : "; \(missing.count) not exactly once")))
        let expectedReceipts = records.filter { $0.state == "final" }.flatMap { r in r.receipts.map { "\(r.requestId.hex)/\($0.node.text)" } }
        let receiptProblems = expectedReceipts.filter { receiptCount[$0, default: 0] != 1 }.count + receiptCount.values.filter { $0 != 1 }.count
        checks.append(Check(name: "every receipt on the chain once", ok: receiptProblems == 0 && Set(expectedReceipts).count == receiptCount.count,
                            detail: "\(expectedReceipts.count) receipts in the gateway's records, \(receiptCount.count) on the chain" + (receiptProblems == 0 ? ", each once" : "; \(receiptProblems) not exactly once")))

        var outcomes: [String: Int] = [:], kinds: [String: Int] = [:]
        for e in entries {
            outcomes[e.outcome.rawValue, default: 0] += 1
            kinds[e.kind.rawValue, default: 0] += 1
        }
        return Report(seed: seed, minutes: minutes, backend: backend, replicas: replicas, clients: clients, requests: entries.count, outcomes: outcomes,
                      kinds: kinds, kills: downs.filter { $0.action == "kill" }.count, pauses: downs.filter { $0.action == "pause" }.count,
                      restarts: downs.filter { $0.action == "kill" }.count, transactionsAcknowledged: acknowledged.count,
                      requestsSettled: settlements.count, chargedUnits: charged, gatewayAvailability: availability,
                      processes: figures,
                      chaos: downs.map { "\(String(format: "%.1f", $0.from)) s: \($0.action) \($0.name) for \(String(format: "%.1f", $0.to - $0.from)) s" },
                      checks: checks, ok: checks.allSatisfy(\.ok))
    }

    static let fdBound = 24
    static let measuredAtLeast = 120.0
    static let rssBoundMB = 48.0

    // MARK: The load

    static let words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "seven", "green", "north", "light", "paper"]

    /// One client: requests of every kind, one after another, until `end`.
    static func client(_ log: Log, info: LocalNetwork.Info, model: String, seed: UInt64, until end: Double) async {
        var rng = SeededGenerator(seed: seed)
        let kinds: [(Kind, UInt64)] = [(.chat, 30), (.chatStream, 20), (.completion, 12), (.completionStream, 8), (.hangUp, 10), (.bad, 20)]
        let total = kinds.reduce(0) { $0 + $1.1 }
        while log.now < end {
            var pick = rng.next() % total
            var kind = Kind.chat
            for (k, w) in kinds { if pick < w { kind = k; break }; pick -= w }
            let start = log.now
            var entry = await request(kind, info: info, model: model, rng: &rng)
            entry.start = start
            entry.end = log.now
            let recorded = entry
            log.entries.update { $0.append(recorded) }
        }
    }

    static func request(_ kind: Kind, info: LocalNetwork.Info, model: String, rng: inout SeededGenerator) async -> Entry {
        let content = (0..<(1 + Int(rng.next() % 8))).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ")
        let chat = kind == .chat || kind == .chatStream || kind == .hangUp || (kind == .bad && rng.next() % 2 == 0)
        var body: [String: Any] = ["model": model, "max_tokens": 1 + Int(rng.next() % 12), "seed": Int(rng.next() % 1_000)]
        if rng.next() % 2 == 0 { body["temperature"] = 0.8 } else { body["temperature"] = 0 }
        if chat { body["messages"] = [["role": "user", "content": content]] } else { body["prompt"] = content }
        let stream = kind == .chatStream || kind == .completionStream || kind == .hangUp
        if stream { body["stream"] = true }
        if kind == .chat && rng.next() % 8 == 0 { body["n"] = 2 }
        var authorization = "Bearer \(info.apiKey)"
        var raw: [UInt8]? = nil
        var what = ""
        if kind == .bad {
            switch rng.next() % 6 {
            case 0: raw = Array("{\"model\": \"\(model)\", \"messages\": [".utf8); what = "truncated JSON"
            case 1: authorization = "Bearer sk-plexus-not-a-key"; what = "unknown API key"
            case 2: body["model"] = "no-such-model"; what = "unknown model"
            case 3: body["n"] = 99; what = "n = 99"
            case 4: body["max_tokens"] = -3; what = "negative max_tokens"
            default: body["temperature"] = "hot"; what = "temperature as a string"
            }
        }
        var r = HTTPClientRequest(url: info.baseURL + (chat ? "/chat/completions" : "/completions"))
        r.method = .POST
        r.headers.add(name: "authorization", value: authorization)
        r.headers.add(name: "content-type", value: "application/json")
        let bytes = raw ?? ((try? JSONSerialization.data(withJSONObject: body)).map { Array($0) } ?? [])
        r.body = .bytes(ByteBuffer(bytes: bytes))
        var entry = Entry(kind: kind, start: 0, end: 0, status: 0, outcome: .failed, ids: [], detail: what)
        do {
            let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(90))
            entry.status = Int(resp.status.code)
            entry.ids = resp.headers["x-plexus-choices"].first.map { $0.split(separator: ",").compactMap { try? Hash256(hex: String($0)) } }
                ?? resp.headers["x-plexus-request-id"].compactMap { try? Hash256(hex: $0) }
            if kind == .hangUp && resp.status == .ok {
                // One chunk, then the connection is dropped.
                var it = resp.body.makeAsyncIterator()
                _ = try await it.next()
                entry.outcome = .hungUp
                return entry
            }
            let answer = String(buffer: try await resp.body.collect(upTo: 8 << 20))
            if kind == .bad {
                entry.outcome = (400..<500).contains(entry.status) ? .refused : .unexpected
                entry.detail = "\(what): \(entry.status) \(answer.prefix(120))"
            } else if resp.status != .ok {
                entry.detail = answer
            } else if stream && (!answer.contains("data: [DONE]") || answer.contains("data: {\"error\"")) {
                entry.detail = "stream cut: " + String(answer.suffix(200))
            } else {
                entry.outcome = .ok
            }
        } catch {
            entry.detail = "\(error)"
        }
        return entry
    }

    /// A transfer a second from the requestor to a fresh account, each acknowledged hash kept.
    static func transfer(_ log: Log, ledger: LedgerClient, key: KeyPair, until end: Double) async {
        let sink = KeyPair().address
        while log.now < end {
            if let r = try? await ledger.send(.transfer(to: sink, amount: Amount(units: 1)), from: key) {
                log.acknowledged.update { $0.append(r.hash) }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    // MARK: The chaos

    /// Until `end`: every `every` seconds or so, one process is killed and restarted, or
    /// paused and resumed; one at a time, so that some node always serves.
    static func chaos(_ net: LocalNetwork, _ log: Log, seed: UInt64, every: Double, until end: Double) async {
        guard every > 0 else { return }
        var rng = SeededGenerator(seed: seed)
        func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * Double(rng.next() >> 11) / Double(1 << 53) }
        let victims = net.children.map(\.name) + (net.etcd.map { e in e.members.indices.map { "etcd-\($0 + 1)" } } ?? [])
        // The first requests are served undisturbed.
        try? await Task.sleep(for: .seconds(min(10, (end - log.now) / 4)))
        while log.now < end {
            try? await Task.sleep(for: .seconds(uniform(0.5, 1.5) * every))
            guard log.now < end else { break }
            let name = victims[Int(rng.next() % UInt64(victims.count))]
            let pause = rng.next() % 10 < 4
            let hold = pause ? uniform(1, 5) : uniform(0.5, 3)
            let from = log.now
            if name.hasPrefix("etcd-"), let cluster = net.etcd, let i = Int(name.dropFirst(5)).map({ $0 - 1 }) {
                if pause {
                    cluster.signal(i, SIGSTOP)
                    try? await Task.sleep(for: .seconds(hold))
                    cluster.signal(i, SIGCONT)
                } else {
                    cluster.signal(i, SIGKILL)
                    try? await Task.sleep(for: .seconds(hold))
                    try? cluster.start(i)
                    if let pid = cluster.pid(i) { log.pids.update { $0[name] = pid } }
                    try? await Task.sleep(for: .seconds(1))
                }
            } else if let p = net.children.first(where: { $0.name == name })?.process {
                if pause {
                    kill(p.processIdentifier, SIGSTOP)
                    try? await Task.sleep(for: .seconds(hold))
                    kill(p.processIdentifier, SIGCONT)
                } else {
                    kill(p.processIdentifier, SIGKILL)
                    let gone = Date().addingTimeInterval(10)
                    while p.isRunning && Date() < gone { try? await Task.sleep(for: .milliseconds(20)) }
                    try? await Task.sleep(for: .seconds(hold))
                    do {
                        try await net.restart(name)
                    } catch {
                        FileHandle.standardError.write(Data("soak: \(name) did not restart: \(error)\n".utf8))
                    }
                    if let q = net.children.first(where: { $0.name == name })?.process { log.pids.update { $0[name] = q.processIdentifier } }
                }
            }
            let down = Down(name: name, action: pause ? "pause" : "kill", from: from, to: log.now)
            log.downs.update { $0.append(down) }
        }
    }

    // MARK: Memory and descriptors

    /// Every 2 s: each process's resident memory and open descriptors, from /proc, and each
    /// node's prefix-cache size from its `/metrics`.
    static func sample(_ log: Log, nodePorts: [String: Int], until end: Double) async {
        while !Task.isCancelled && log.now < end + 1 {
            let t = log.now
            for (name, pid) in log.pids.value {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                      let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }),
                      let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count else { continue }
                var sample = Sample(t: t, pid: pid, rssKB: kb, fds: fds)
                if let port = nodePorts[name] {
                    // A node whose cache cannot be read now (paused, restarting) gives no sample.
                    guard let cache = await prefixCacheBytes(port: port) else { continue }
                    sample.cacheKB = cache / 1024
                }
                log.samples.update { $0[name, default: []].append(sample) }
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }

    static func prefixCacheBytes(port: Int) async -> Int? {
        guard let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(1)),
              r.status == .ok, let body = try? await r.body.collect(upTo: 1 << 20) else { return nil }
        let line = String(buffer: body).split(separator: "\n").first { $0.hasPrefix("plexus_node_prefix_cache_bytes ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) } ?? 0
    }

    /// Each process's growth over the second half of its longest-lived incarnation (the first
    /// half, and at least a minute, is its warm-up: a node's prefix cache and batch slots fill
    /// to their bounds with use): medians of the first and last five samples of that half.
    static func figures(_ samples: [String: [Sample]], downs: [Down]) -> [ProcessFigures] {
        samples.keys.sorted().map { name in
            let all = samples[name] ?? []
            var byPid: [Int32: [Sample]] = [:]
            for s in all { byPid[s.pid, default: []].append(s) }
            let mine = downs.filter { $0.name == name }
            var f = ProcessFigures(name: name, incarnations: byPid.count, kills: mine.filter { $0.action == "kill" }.count,
                                   pauses: mine.filter { $0.action == "pause" }.count, measuredSeconds: 0,
                                   rssStartMB: 0, rssEndMB: 0, rssGrowthMB: 0, cacheGrowthMB: 0, fdsStart: 0, fdsEnd: 0, fdGrowth: 0)
            guard let longest = byPid.values.max(by: { ($0.last!.t - $0.first!.t) < ($1.last!.t - $1.first!.t) }) else { return f }
            let life = longest.last!.t - longest.first!.t
            let warm = longest.filter { $0.t >= longest.first!.t + max(60, life / 2) }
            guard warm.count >= 2 else { return f }
            func median(_ v: [Int]) -> Int { v.sorted()[v.count / 2] }
            let head = Array(warm.prefix(5)), tail = Array(warm.suffix(5))
            f.measuredSeconds = warm.last!.t - warm.first!.t
            f.rssStartMB = Double(median(head.map(\.rssKB))) / 1024
            f.rssEndMB = Double(median(tail.map(\.rssKB))) / 1024
            f.cacheGrowthMB = Double(median(tail.map(\.cacheKB)) - median(head.map(\.cacheKB))) / 1024
            f.rssGrowthMB = f.rssEndMB - f.rssStartMB - max(0, f.cacheGrowthMB)
            f.fdsStart = median(head.map(\.fds))
            f.fdsEnd = median(tail.map(\.fds))
            f.fdGrowth = f.fdsEnd - f.fdsStart
            return f
        }
    }
}
