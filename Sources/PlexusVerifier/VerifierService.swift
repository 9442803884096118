import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusWire

/// A verifier: follows the ledger, fetches the transcripts of the checks it is
/// assigned and of the disputes it sits on from the gateway, re-executes them
/// with its own engine, and posts verdicts (with the evidence only a
/// re-execution gives) and sealed, then revealed, votes before their deadlines.
public actor VerifierService {
    /// How a verifier behaves: honestly, or (a drill on development chains) lazily,
    /// passing everything without running the model.
    public enum Mode: String, Sendable { case honest, lazy }

    let ledger: LedgerClient
    let key: KeyPair
    let gateway: String
    let checker: TranscriptCheck
    let mode: Mode
    let log: Logger
    let http: HTTPClient
    /// One transaction from the verifier's key at a time (verdicts, votes, service reports).
    public nonisolated let sending = AsyncLock()
    var chainId = ""
    /// Results by request id, so a dispute reuses the check's re-execution.
    var reports: [Hash256: TranscriptReport] = [:]
    var verdictsSent: Set<Hash256> = []
    /// Sealed votes, kept to reveal them.
    var sealed: [Hash256: (fraud: Bool, salt: Hash256)] = [:]
    var revealed: Set<Hash256> = []
    /// Counts for `/metrics` and `status`.
    public private(set) var counts = Counts()

    public struct Counts: Sendable, Codable {
        public var checked = 0, passed = 0, failed = 0, votes = 0, unreachable = 0
    }

    public init(ledger: LedgerClient, key: KeyPair, gateway: String, checker: TranscriptCheck, mode: Mode = .honest,
                http: HTTPClient = .shared, log: Logger = Logger(label: "plexus.verifier")) {
        self.ledger = ledger
        self.key = key
        var g = gateway
        while g.hasSuffix("/") { g.removeLast() }
        self.gateway = g
        self.checker = checker
        self.mode = mode
        self.http = http
        self.log = log
    }

    /// Registers as a verifier if it is not one (its stake must already meet the minimum).
    public func register() async throws {
        chainId = try await ledger.status().chainId
        let mine = try await ledger.verifiers().contains { $0.account == key.address }
        if !mine { _ = try await ledger.send(.registerVerifier, from: key) }
    }

    /// Sends `body` from the verifier's key, without waiting for its block, after any other
    /// transaction of this key in flight.
    func send(_ body: Transaction.Body) async throws {
        let ledger = ledger, key = key
        _ = try await sending.withLock { try await ledger.send(body, from: key, waitForCommit: false) }
    }

    /// Works until `stopped` returns true: one round per new block (or every two seconds).
    public func run(stopped: @Sendable () -> Bool) async {
        var since: UInt64 = 0
        while !stopped() {
            do {
                let work = try await ledger.work(of: key.address)
                try await round(work)
                since = work.height
                _ = try? await ledger.events(since: since, timeoutMillis: 2_000)
            } catch {
                log.warning("verifier round failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// One pass over the work the ledger lists for this verifier.
    func round(_ work: VerifierWorkView) async throws {
        if chainId.isEmpty { chainId = try await ledger.status().chainId }
        for c in work.checks where !verdictsSent.contains(c.requestId) && work.height < c.deadline {
            let pass: Bool, share: UInt8, evidence: [ChunkEvidence]
            if mode == .lazy {
                // The drill: a pass without running the model, "proved" with what the receipt already shows.
                (pass, share, evidence) = (true, 0, c.shares.map { ChunkEvidence(chunk: $0.root, path: []) })
            } else {
                guard let report = await report(c.requestId) else { continue }
                pass = report.ok && report.evidence.count == c.shares.count
                (share, evidence) = pass ? (0, report.evidence) : (UInt8(clamping: report.failingShare ?? 0), [])
            }
            let body = Transaction.Body.verdict(requestId: c.requestId, pass: pass, share: share, evidence: evidence)
            verdictsSent.insert(c.requestId)
            if pass { counts.passed += 1 } else { counts.failed += 1 }
            log.info("verdict", metadata: ["request": "\(c.requestId.hex.prefix(16))", "pass": "\(pass)"])
            try await send(body)
        }
        for d in work.disputes {
            let landing = work.height + 1
            if sealed[d.requestId] == nil, landing < d.revealHeight {
                let fraud: Bool
                if mode == .lazy {
                    fraud = false
                } else {
                    guard let report = await report(d.requestId) else { continue }
                    fraud = !report.ok
                }
                var salt = [UInt8](repeating: 0, count: 32)
                for i in salt.indices { salt[i] = UInt8.random(in: 0...255) }
                let s = try Hash256(bytes: salt)
                sealed[d.requestId] = (fraud, s)
                counts.votes += 1
                try await send(.commitVote(requestId: d.requestId, commitment: Dispute.voteCommitment(requestId: d.requestId, member: key.address, fraud: fraud, salt: s)))
            } else if let v = sealed[d.requestId], !revealed.contains(d.requestId), work.height >= d.revealHeight, landing < d.resolveHeight {
                revealed.insert(d.requestId)
                try await send(.revealVote(requestId: d.requestId, fraud: v.fraud, salt: v.salt))
            }
        }
    }

    /// The re-execution of `id`'s transcript (fetched from the gateway), or nil when it cannot be had now.
    /// A transcript the engine cannot even replay (tokens it refuses, say) fails.
    func report(_ id: Hash256) async -> TranscriptReport? {
        if let r = reports[id] { return r }
        let t: Transcript
        do {
            t = try await transcript(id)
        } catch {
            counts.unreachable += 1
            log.warning("cannot fetch the transcript", metadata: ["request": "\(id.hex.prefix(16))", "error": "\(error)"])
            return nil
        }
        let r: TranscriptReport
        do {
            r = try checker.check(t)
        } catch {
            log.notice("the transcript does not replay", metadata: ["request": "\(id.hex.prefix(16))", "error": "\(error)"])
            r = TranscriptReport.unreplayable(t, problem: "\(error)")
        }
        counts.checked += 1
        reports[id] = r
        return r
    }

    func transcript(_ id: Hash256) async throws -> Transcript {
        var request = HTTPClientRequest(url: "\(gateway)/v1/receipts/\(id.hex)/transcript")
        for (n, v) in TranscriptAccess.headers(chainId: chainId, requestId: id, key: key) { request.headers.add(name: n, value: v) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else {
            throw PlexusError(.io, "the gateway answered \(response.status.code) for the transcript of \(id.hex.prefix(16)): \(String(buffer: body).prefix(200))")
        }
        return try Transcript.decode(Array(buffer: body))
    }
}
