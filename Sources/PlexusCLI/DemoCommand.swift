import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PlexusCore
import PlexusEngine
import PlexusLedger
import PlexusVerifier
import PlexusWire

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Send a chat request through a local network (starting one if `plexus up` is not running) and follow it to settlement.")

    @Option(name: .long, help: "The network's directory (as for `plexus up`).") var dir: String?
    @Option(name: .long, help: "What to ask.") var prompt: String = "In one sentence, what is an inference network?"
    @Option(name: .long, help: "Most tokens in the answer.") var maxTokens: Int = 48
    @Option(name: .long, help: "Model store directory.") var store: String?
    @Option(name: .long, help: "Seconds to wait for the final settlement.") var settleTimeout: Double = 60
    @Option(name: .long, help: "Serve the answer through a pipeline of this many shard nodes (a network started here runs only those).") var shards: Int?

    func validate() throws {
        if let shards { guard (1...8).contains(shards) else { throw ValidationError("--shards must be 1...8") } }
    }

    func run() async throws {
        let dir = self.dir ?? UpCommand.defaultDir
        var started: LocalNetwork?
        var info: LocalNetwork.Info
        if let data = try? Data(contentsOf: URL(fileURLWithPath: dir + "/network.json")),
           let existing = try? JSONDecoder().decode(LocalNetwork.Info.self, from: data),
           await Self.healthy(existing.baseURL) {
            info = existing
            print("using the network at \(existing.baseURL)")
        } else {
            let net = shards.map { LocalNetwork(dir: dir, store: store, nodes: 0, shards: $0) } ?? LocalNetwork(dir: dir, store: store)
            started = net
            do {
                info = try await net.start(gatewayPort: 0) { print($0) }
            } catch {
                net.stop()
                throw error
            }
        }
        defer { started?.stop() }
        try await Self.chat(info, prompt: prompt, maxTokens: maxTokens, settleTimeout: settleTimeout, store: store, shards: shards != nil)
    }

    /// Fetches the request's transcript and re-executes it here, as a verifier would.
    static func verify(root: String, id: String, key: String, store: String?) async throws {
        var r = HTTPClientRequest(url: root + "/receipts/\(id)/transcript")
        r.headers.add(name: "authorization", value: "Bearer \(key)")
        let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(60))
        let bytes = try await resp.body.collect(upTo: Transcript.maxBytes)
        guard resp.status == .ok else { throw PlexusError(.io, "the gateway answered \(resp.status.code) for the transcript") }
        let transcript = try Transcript.decode(Array(buffer: bytes))
        let path = try ModelStore(directory: store).resolve(LocalNetwork.model)
        let check = try TranscriptCheck(model: try LlamaModel(path: path), modelHash: try Hash256(hex: ModelStore.smolLM2.sha256),
                                        threads: ProcessInfo.processInfo.activeProcessorCount)
        let report = try check.check(transcript)
        if report.ok {
            print("verified here by exact re-execution: all \(report.outputTokens) tokens reproduced in one prefill, "
                  + "the node's commitment \(report.commitmentRoot.hex.prefix(16))… (\(report.chunks) chunks) recomputed")
        } else {
            throw PlexusError(.invalidState, "the answer did not verify: \(report.bindingProblems), first mismatch \(String(describing: report.firstMismatch))")
        }
    }

    static func healthy(_ baseURL: String) async -> Bool {
        let root = baseURL.hasSuffix("/v1") ? String(baseURL.dropLast(3)) : baseURL
        guard let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: root + "/health"), timeout: .seconds(2)) else { return false }
        return r.status == .ok
    }

    static func request(_ url: String, key: String, body: [String: Any]? = nil) async throws -> (HTTPClientResponse, [String: Any]) {
        var r = HTTPClientRequest(url: url)
        r.headers.add(name: "authorization", value: "Bearer \(key)")
        if let body {
            r.method = .POST
            r.headers.add(name: "content-type", value: "application/json")
            r.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        }
        let resp = try await HTTPClient.shared.execute(r, timeout: .seconds(300))
        let bytes = try await resp.body.collect(upTo: 16 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any] ?? [:]
        return (resp, json)
    }

    static func chat(_ info: LocalNetwork.Info, prompt: String, maxTokens: Int, settleTimeout: Double, store: String?, shards: Bool = false) async throws {
        print("\n> \(prompt)")
        var body: [String: Any] = ["model": LocalNetwork.model, "max_tokens": maxTokens, "temperature": 0, "messages": [["role": "user", "content": prompt]]]
        if shards { body["plexus"] = ["shards": "only"] }
        let (resp, json) = try await request(info.baseURL + "/chat/completions", key: info.apiKey, body: body)
        guard resp.status == .ok,
              let choice = (json["choices"] as? [[String: Any]])?.first,
              let message = choice["message"] as? [String: Any], let text = message["content"] as? String else {
            throw PlexusError(.io, "the gateway answered \(resp.status.code): \(json)")
        }
        let id = resp.headers.first(name: "x-plexus-request-id") ?? ""
        let node = resp.headers.first(name: "x-plexus-node") ?? "?"
        let usage = json["usage"] as? [String: Any] ?? [:]
        print(text.trimmingCharacters(in: .whitespacesAndNewlines))
        let root = info.baseURL
        let (_, receipt) = try await request(root + "/receipts/\(id)", key: info.apiKey)
        let signed = (receipt["request"] as? [String: Any])?["receipts"] as? [[String: Any]] ?? []
        // A pipeline's shards, by the layers each served.
        func layers(_ r: [String: Any]) -> String? {
            guard let l = (r["shard"] as? [String: Any])?["layers"] as? [String: Any] else { return nil }
            return "layers \(l["start"] ?? "?")-\(l["end"] ?? "?") of \(l["total"] ?? "?")"
        }
        let spans = Dictionary(signed.compactMap { r in layers(r).map { (String(describing: r["node"] ?? ""), $0) } }, uniquingKeysWith: { a, _ in a })
        if spans.isEmpty {
            print("\nserved by node \(node) (attempts: \(resp.headers.first(name: "x-plexus-attempts") ?? "1")); "
                  + "\(usage["prompt_tokens"] ?? 0) prompt + \(usage["completion_tokens"] ?? 0) completion tokens")
        } else {
            print("\nserved by a pipeline of \(spans.count) shards, hidden states passed shard to shard: "
                  + signed.compactMap(layers).joined(separator: " → ") + "; \(usage["prompt_tokens"] ?? 0) prompt + \(usage["completion_tokens"] ?? 0) completion tokens")
        }
        if let req = receipt["request"] as? [String: Any] {
            print("receipt \(id.prefix(16))…: charge \(req["charge"] ?? "?") base units, state \(req["state"] ?? "?")")
            for r in signed {
                let who = layers(r).map { "shard (\($0))" } ?? "node"
                print("  \(who) \(r["node"] ?? "?"): \(r["inputTokens"] ?? 0) in, \(r["outputTokens"] ?? 0) out, "
                      + "signed by the node and countersigned by gateway \(String(describing: r["gateway"] ?? "?").prefix(16))…")
            }
        }
        try await verify(root: root, id: id, key: info.apiKey, store: store)
        print("waiting for settlement (the challenge window is 10 blocks)…")
        let deadline = Date().addingTimeInterval(settleTimeout)
        var last = "", lastCheck = ""
        while Date() < deadline {
            let (_, r) = try await request(root + "/receipts/\(id)", key: info.apiKey)
            let state = (r["request"] as? [String: Any])?["state"] as? String ?? "?"
            if state != last {
                print("  settlement: \(state)")
                last = state
            }
            // The ledger's spot check: drawn by lot after settlement, re-executed by a verifier.
            if let check = (r["verification"] as? [String: Any])?["check"] as? [String: Any], let c = check["state"] as? String, c != lastCheck {
                let verifier = String(describing: check["verifier"] ?? "none").prefix(20)
                print("  ledger check: \(c)" + (c == "assigned" || c == "passed" ? " (verifier \(verifier)…)" : ""))
                lastCheck = c
            }
            if state == "final", let s = r["settlement"] as? [String: Any] {
                print("final settlement at height \(s["finalHeight"] ?? "?"): \(s["charge"] ?? "?") base units from the requestor's escrow")
                let nodes = Set((s["nodes"] as? [String]) ?? [])
                for p in s["payouts"] as? [[String: Any]] ?? [] {
                    let who = String(describing: p["account"] ?? "?")
                    let role = spans[who].map { "the shard serving \($0)" } ?? (nodes.contains(who) ? "the node" : "the model's creator (royalty)")
                    print("  \(p["amount"] ?? "?") to \(role) \(who.prefix(20))…")
                }
                print("  \(s["fee"] ?? "?") protocol fee to the treasury")
                return
            }
            if state == "rejected" { throw PlexusError(.invalidState, "the ledger rejected the settlement: \(r)") }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw PlexusError(.io, "the request did not reach final settlement within \(Int(settleTimeout)) s")
    }
}
