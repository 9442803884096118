import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusEngine
import PlexusWire

/// Fronts any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama):
/// chat and completion requests are forwarded as streaming requests and the
/// text relayed. Such servers do not expose token ids, so each piece is sent
/// as an opaque token (id -1) and no other node can continue the output: if
/// the upstream fails mid-answer, the gateway ends the stream with an error.
public struct UpstreamBackend: GenerationBackend {
    public let baseURL: String
    /// The model name the upstream server knows.
    public let upstreamModel: String
    public let modelHash: Hash256
    public let contextLength: Int
    /// Sent as `Authorization: Bearer` when set.
    public let apiKey: String?
    public var name: String { "upstream \(baseURL)" }
    /// The token id sent for pieces whose ids are unknown.
    public static let opaqueToken: TokenID = -1

    public init(baseURL: String, upstreamModel: String, modelHash: Hash256, contextLength: Int, apiKey: String? = nil) {
        self.apiKey = apiKey
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.upstreamModel = upstreamModel
        self.modelHash = modelHash
        self.contextLength = contextLength
    }

    enum Item: Sendable {
        case text(String)
        case end(finish: String, prompt: Int?, completion: Int?)
        case failed(String)
    }

    /// A queue from the async HTTP reader to the generating thread.
    final class Channel: @unchecked Sendable {
        // Invariant: `items` only under `condition`.
        private let condition = NSCondition()
        private var items: [Item] = []
        func put(_ i: Item) { condition.lock(); items.append(i); condition.signal(); condition.unlock() }
        func take(timeout: TimeInterval) -> Item? {
            condition.lock()
            defer { condition.unlock() }
            let deadline = Date().addingTimeInterval(timeout)
            while items.isEmpty { if !condition.wait(until: deadline) { return nil } }
            return items.removeFirst()
        }
    }

    public func generate(_ r: GenerateRequest, onToken: (TokenID?, String) throws -> Void) throws -> BackendResult {
        guard r.continuation.isEmpty else {
            throw PlexusError(.unsupported, "an upstream backend cannot continue another node's output")
        }
        var body: [String: Any] = ["model": upstreamModel, "max_tokens": r.maxTokens, "temperature": r.temperature, "top_p": r.topP,
                                   "seed": r.seed, "stream": true, "stream_options": ["include_usage": true]]
        if !r.stop.isEmpty { body["stop"] = r.stop }
        let path: String
        if let messages = r.messages {
            body["messages"] = messages.map { ["role": $0.role, "content": $0.content] }
            path = "/v1/chat/completions"
        } else {
            body["prompt"] = r.prompt ?? ""
            path = "/v1/completions"
        }
        let data = try JSONSerialization.data(withJSONObject: body)
        let channel = Channel()
        let url = baseURL + path
        let apiKey = self.apiKey
        let task = Task {
            do {
                var req = HTTPClientRequest(url: url)
                req.method = .POST
                req.headers.add(name: "content-type", value: "application/json")
                if let apiKey { req.headers.add(name: "authorization", value: "Bearer \(apiKey)") }
                req.body = .bytes(ByteBuffer(data: data))
                let resp = try await HTTPClient.shared.execute(req, timeout: .seconds(600))
                guard resp.status == .ok else {
                    let b = try await resp.body.collect(upTo: 64 * 1024)
                    channel.put(.failed("upstream answered \(resp.status.code): \(String(buffer: b).prefix(300))"))
                    return
                }
                var buffer = ""
                var finish = "stop", prompt: Int?, completion: Int?
                var sawDone = false
                for try await part in resp.body {
                    buffer += String(buffer: part)
                    while let range = buffer.range(of: "\n") {
                        let line = buffer[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                        buffer.removeSubrange(..<range.upperBound)
                        guard line.hasPrefix("data:") else { continue }
                        let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                        if payload == "[DONE]" {
                            sawDone = true
                            continue
                        }
                        guard let json = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else { continue }
                        if let u = json["usage"] as? [String: Any] {
                            prompt = u["prompt_tokens"] as? Int
                            completion = u["completion_tokens"] as? Int
                        }
                        for c in json["choices"] as? [[String: Any]] ?? [] {
                            let text = ((c["delta"] as? [String: Any])?["content"] as? String) ?? (c["text"] as? String) ?? ""
                            if !text.isEmpty { channel.put(.text(text)) }
                            if let f = c["finish_reason"] as? String { finish = f }
                        }
                    }
                }
                // A stream cut short (no [DONE]) is a failure, not an answer.
                channel.put(sawDone ? .end(finish: finish, prompt: prompt, completion: completion) : .failed("the upstream's stream ended early"))
            } catch {
                channel.put(.failed("\(error)"))
            }
        }
        defer { task.cancel() }
        var pieces = 0
        var text = ""
        while true {
            guard let item = channel.take(timeout: 600) else { throw PlexusError(.io, "the upstream server stopped answering") }
            switch item {
            case let .text(t):
                pieces += 1
                text += t
                try onToken(Self.opaqueToken, t)
            case let .failed(m):
                throw PlexusError(.io, m)
            case let .end(finish, prompt, completion):
                // Counts from the upstream's usage when it reports them.
                let n = completion ?? pieces
                return BackendResult(promptTokens: prompt ?? max(1, text.utf8.count / 4), finish: finish == "length" ? "length" : "stop",
                                     tokens: Array(repeating: Self.opaqueToken, count: n))
            }
        }
    }
}
