import ArgumentParser
import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import PlexusCore
import PlexusGateway
import PlexusLedger
import PlexusHTTP
import PlexusNode
import PlexusWire

/// What the gateway adds: latency over calling a node directly, and
/// requests per second, on a local network of echo nodes (synthetic: the
/// node work is negligible, so the figures are the gateway's own).
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Latency the gateway adds over a direct node call, and requests/s it sustains.")

    @Option(name: .long, help: "Sequential requests for the latency figures (each way).") var requests: Int = 500
    @Option(name: .long, help: "Requests in flight for the throughput figure.") var concurrency: Int = 32
    @Option(name: .long, help: "Seconds of the throughput run.") var seconds: Double = 10
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Result: Codable {
        var benchmark = "gateway"
        var backend = "echo (synthetic)"
        var requests: Int
        var directP50Ms: Double
        var directP99Ms: Double
        var gatewayP50Ms: Double
        var gatewayP99Ms: Double
        var addedP50Ms: Double
        var addedP99Ms: Double
        var concurrency: Int
        var requestsPerS: Double
        var errors: Int
        var receiptsStored: Int
        /// CPU time per request during the throughput phase, by process: gateway, nodes (all three), ledger, load generator.
        var cpuMsPerRequest: [String: Double] = [:]
        /// Share of the machine's CPU time the hypervisor gave to others during the throughput phase (from /proc/stat).
        var stealPercent: Double?
        /// The same during the latency phase.
        var stealPercentLatency: Double?
        /// What a durable write costs on this disk during the latency phase: p50 of a 700-byte
        /// write and `fdatasync` (about one receipt) made between requests, in the same directory.
        var diskSyncP50Ms: Double?
        /// Seconds after the throughput phase until every receipt of it was settled on the ledger.
        var settledAfterS: Double?
        /// CPU time per request by process from the start of the throughput phase until its last receipt was settled.
        var cpuMsPerRequestWithSettlement: [String: Double] = [:]

        enum CodingKeys: String, CodingKey {
            case benchmark, backend, requests, concurrency, errors
            case directP50Ms = "direct_p50_ms", directP99Ms = "direct_p99_ms"
            case gatewayP50Ms = "gateway_p50_ms", gatewayP99Ms = "gateway_p99_ms"
            case addedP50Ms = "added_p50_ms", addedP99Ms = "added_p99_ms"
            case requestsPerS = "requests_per_s"
            case receiptsStored = "receipts_stored"
            case cpuMsPerRequest = "cpu_ms_per_request"
            case stealPercent = "steal_percent"
            case stealPercentLatency = "steal_percent_latency"
            case diskSyncP50Ms = "disk_sync_p50_ms"
            case settledAfterS = "settled_after_s"
            case cpuMsPerRequestWithSettlement = "cpu_ms_per_request_with_settlement"
        }
    }

    func validate() throws {
        guard (10...1_000_000).contains(requests), (1...4096).contains(concurrency), seconds > 0, seconds <= 3_600 else {
            throw ValidationError("requests 10..., concurrency 1...4096, seconds in (0, 3600]")
        }
    }

    static func percentile(_ v: [Double], _ p: Double) -> Double {
        let s = v.sorted()
        return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
    }

    func run() async throws {
        Bootstrap.tasksOnEventLoops()
        let dir = NSTemporaryDirectory() + "plexus-bench-gateway-\(getpid())"
        let net = LocalNetwork(dir: dir, store: nil, backend: "echo")
        defer {
            net.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let info = try await net.start(gatewayPort: 0) { _ in }
        let ledger = LedgerClient(baseURL: info.ledger)
        let chainId = try await ledger.status().chainId
        let gatewayKey = try KeyFile.read(dir + "/keys/gateway.json")
        let node = try requireNode(await ledger.nodes())
        let message = "one two three four five six seven eight"
        let nodeBody = try Array(JSONEncoder.compact.encode(GenerateRequest(model: "echo", messages: [.init(role: "user", content: message)], maxTokens: 16)))
        let chatBody = try Array(JSONSerialization.data(withJSONObject: [
            "model": "echo", "max_tokens": 16, "messages": [["role": "user", "content": message]]]))
        // The load generator: pooled keep-alive connections, as a load tool such as wrk uses.
        let http = PlainHTTPClient()
        guard let nodeTarget = PlainHTTPClient.Target(url: node.endpoint), let gatewayTarget = PlainHTTPClient.Target(url: info.baseURL) else {
            throw PlexusError(.io, "the local network's URLs are not plain http")
        }
        let gatewayPath = (URL(string: info.baseURL)?.path ?? "/v1") + "/chat/completions"
        let gatewayHeaders = [("authorization", "Bearer \(info.apiKey)"), ("content-type", "application/json")]

        func direct(_ i: Int) async throws -> Double {
            var e = Envelope(requestId: Hash256.of(Array("bench-\(i)".utf8)), requestor: info.requestor, gateway: gatewayKey.address,
                             node: node.nodeKey, bodyHash: Hash256.of(Array(nodeBody)), expiresAtMillis: SystemClock().nowMillis() + 60_000)
            e.sign(gatewayKey, chainId: chainId)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (status, text) = try await http.post(nodeTarget, path: "/v1/generate", headers: [(Envelope.header, e.hex)], body: nodeBody,
                                                     timeout: .seconds(30)) { r in (r.status, String(decoding: try await r.body.collect(), as: UTF8.self)) }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            // The receipt is signed by the node and checked here, as the gateway does.
            guard status == 200, let line = text.components(separatedBy: "\n\n").first(where: { $0.contains("\"done\"") }),
                  let event = try? JSONDecoder().decode(NodeEvent.self, from: Data(line.dropFirst(6).utf8)), let receipt = event.receipt,
                  receipt.node.verifies(receipt.nodeSignature, over: receipt.nodeSigningBytes(chainId: chainId)) else {
                throw PlexusError(.io, "direct call failed: \(status) \(text.prefix(200))")
            }
            return ms
        }
        func viaGateway() async throws -> (Double, Bool) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let status = try await http.post(gatewayTarget, path: gatewayPath, headers: gatewayHeaders, body: chatBody, timeout: .seconds(30)) { r in
                _ = try await r.body.collect()
                return r.status
            }
            return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6, status == 200)
        }

        // Warm up both paths, then alternate so that both see the same machine.
        for i in 0..<50 { _ = try await direct(-1 - i); _ = try await viaGateway() }
        var d: [Double] = [], g: [Double] = [], syncs: [Double] = []
        var errors = 0
        let probe = SyncProbe(path: dir + "/sync-probe")
        let latencyTicks = Self.machineTicks()
        for i in 0..<requests {
            d.append(try await direct(i))
            let (ms, ok) = try await viaGateway()
            g.append(ms)
            if !ok { errors += 1 }
            if let s = probe?.measure(i) { syncs.append(s) }
        }
        let latencyTicksAfter = Self.machineTicks()
        probe?.close()
        // Throughput: `concurrency` clients for `seconds`, with each process's CPU time measured.
        let cpuBefore = Self.cpuSeconds(info.pids), selfBefore = Self.cpuSeconds([getpid()]), machineBefore = Self.machineTicks()
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        let counts = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var n = 0, bad = 0
                    while DispatchTime.now().uptimeNanoseconds < end {
                        let (_, ok) = try await viaGateway()
                        if ok { n += 1 } else { bad += 1 }
                    }
                    return (n, bad)
                }
            }
            var total = (0, 0)
            for try await c in group { total = (total.0 + c.0, total.1 + c.1) }
            return total
        }
        errors += counts.1
        let cpuAfter = Self.cpuSeconds(info.pids), selfAfter = Self.cpuSeconds([getpid()]), machineAfter = Self.machineTicks()
        http.closeIdle()
        // Every answered request left a countersigned receipt in the gateway's store; the
        // settlement of the last ones goes on after the phase: wait for it, counting its CPU too.
        let store = try ReceiptStore(path: dir + "/gateway/receipts.sqlite", readOnly: true)
        let stored = try store.count()
        let settleStart = DispatchTime.now().uptimeNanoseconds
        var settledAfter: Double?
        while DispatchTime.now().uptimeNanoseconds - settleStart < 60_000_000_000 {
            if try store.records(in: ["unsettled"], limit: 1).isEmpty {
                settledAfter = Double(DispatchTime.now().uptimeNanoseconds - settleStart) / 1e9
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let cpuSettled = Self.cpuSeconds(info.pids)
        let r = Result(requests: requests, directP50Ms: Self.percentile(d, 0.5), directP99Ms: Self.percentile(d, 0.99),
                       gatewayP50Ms: Self.percentile(g, 0.5), gatewayP99Ms: Self.percentile(g, 0.99),
                       addedP50Ms: Self.percentile(g, 0.5) - Self.percentile(d, 0.5),
                       addedP99Ms: Self.percentile(g, 0.99) - Self.percentile(d, 0.99),
                       concurrency: concurrency, requestsPerS: Double(counts.0) / seconds, errors: errors, receiptsStored: stored)
        let served = Double(max(1, counts.0))
        func perRequest(_ i: [Int]) -> Double { i.reduce(0.0) { $0 + cpuAfter[$1] - cpuBefore[$1] } * 1_000 / served }
        // `plexus up` starts the ledger, the three nodes and then the gateway.
        var result = r
        result.settledAfterS = settledAfter.map { ($0 * 10).rounded() / 10 }
        if info.pids.count == 5, settledAfter != nil {
            func withSettlement(_ i: [Int]) -> Double { i.reduce(0.0) { $0 + cpuSettled[$1] - cpuBefore[$1] } * 1_000 / served }
            result.cpuMsPerRequestWithSettlement = ["ledger": withSettlement([0]), "nodes": withSettlement([1, 2, 3]), "gateway": withSettlement([4]),
                                                    "client": (selfAfter[0] - selfBefore[0]) * 1_000 / served]
        }
        func steal(_ a: (total: UInt64, steal: UInt64)?, _ b: (total: UInt64, steal: UInt64)?) -> Double? {
            guard let a, let b, b.total > a.total else { return nil }
            return (Double(b.steal - a.steal) / Double(b.total - a.total) * 1_000).rounded() / 10
        }
        result.stealPercent = steal(machineBefore, machineAfter)
        result.stealPercentLatency = steal(latencyTicks, latencyTicksAfter)
        result.diskSyncP50Ms = syncs.isEmpty ? nil : Self.percentile(syncs, 0.5)
        if info.pids.count == 5 {
            result.cpuMsPerRequest = ["ledger": perRequest([0]), "nodes": perRequest([1, 2, 3]), "gateway": perRequest([4]),
                                      "client": (selfAfter[0] - selfBefore[0]) * 1_000 / served]
        }
        if json { try printJSON(result) } else {
            print(String(format: "gateway adds %.2f ms (p50), %.2f ms (p99); %.0f requests/s at %d in flight",
                         r.addedP50Ms, r.addedP99Ms, r.requestsPerS, concurrency))
            if let sync = result.diskSyncP50Ms {
                print(String(format: "(a durable write on this disk took %.2f ms at p50 meanwhile; each answer waits for one)", sync))
            }
        }
    }
}

extension GatewayBench {

    /// The machine's CPU ticks in all and stolen by the hypervisor (first line of /proc/stat), if readable.
    static func machineTicks() -> (total: UInt64, steal: UInt64)? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let v = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        guard v.count >= 8 else { return nil }
        return (v.prefix(8).reduce(0, +), v[7])
    }

    /// User + system CPU seconds of each process, from /proc (0 where unreadable).
    static func cpuSeconds(_ pids: [Int32]) -> [Double] {
        pids.map { pid in
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { return 0 }
            let fields = text[text.index(after: close)...].split(separator: " ")
            // After the command name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
            guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
            return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
        }
    }
}

/// Times a small durable write (write + `fdatasync`) in a pre-written file.
private struct SyncProbe {
    let fd: Int32
    static let bytes = [UInt8](repeating: 7, count: 700)

    init?(path: String) {
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        guard zeros.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == zeros.count, fsync(fd) == 0 else {
            Glibc.close(fd)
            return nil
        }
    }

    func close() { Glibc.close(fd) }

    /// Milliseconds for write `i` and its sync (nil if either failed).
    func measure(_ i: Int) -> Double? {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let at = off_t((i % 1_000) * Self.bytes.count)
        guard Self.bytes.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, at) }) == Self.bytes.count, fdatasync(fd) == 0 else { return nil }
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
    }
}

private func requireNode(_ nodes: [NodeRecord]) throws -> NodeRecord {
    guard let n = nodes.first else { throw PlexusError(.notFound, "no node registered") }
    return n
}
