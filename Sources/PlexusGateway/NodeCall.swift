import AsyncHTTPClient
import Foundation
import NIOCore
import PlexusCore
import PlexusHTTP
import PlexusLedger
import PlexusWire

/// A node's answer stream failed.
struct NodeFailure: Error {
    var status: Int
    var code: String
    var message: String
    /// Whether another node may be tried (the node's fault, not the request's).
    var retryable: Bool
    /// The node refused because every slot it offers is taken (429): not a fault of the node,
    /// only a sign that it is full for now.
    var busy = false
}

/// One attempt on one node, as I/O: the signed envelope, the call, the node's
/// events read from its stream up to the receipt.
struct NodeCaller: Sendable {
    /// The gateway key, which signs envelopes.
    let key: KeyPair
    let chainId: String
    /// The pooled HTTP/1.1 client for `http://` node URLs, and AsyncHTTPClient for the rest.
    let plain: PlainHTTPClient, http: HTTPClient

    /// One attempt on one node: streams its events to `onEvent` and returns its receipt.
    func call(_ c: Candidate, _ gen: GenerateRequest, body: [UInt8], requestor: Address, requestId: Hash256, policy: RoutingPolicy,
                      onEvent: (NodeEvent) async throws -> Void) async throws -> NodeAnswer {
        let timeout = Int64(policy.timeoutMs ?? 120_000)
        let env = envelope(for: c.node.nodeKey, body: body, requestor: requestor, requestId: requestId, timeoutMillis: timeout)
        if let target = PlainHTTPClient.Target(url: c.node.endpoint) {
            // Plain HTTP: pooled connections of our own.
            do {
                return try await plain.post(target, path: "/v1/generate", headers: [("content-type", "application/json"), (Envelope.header, env.hex)],
                                            body: body, timeout: .milliseconds(timeout)) { response in
                    var source = PipeSource(pipe: response.body)
                    return try await answer(status: response.status, &source, c, gen, requestId: requestId, onEvent: onEvent)
                }
            } catch let f as NodeFailure {
                throw f
            } catch let e as OpenAIError {
                throw e
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw NodeFailure(status: 503, code: "node_unreachable", message: "\(error)", retryable: true)
            }
        }
        var hr = HTTPClientRequest(url: c.node.endpoint + "/v1/generate")
        hr.method = .POST
        hr.headers.add(name: "content-type", value: "application/json")
        hr.headers.add(name: Envelope.header, value: env.hex)
        hr.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(hr, timeout: .milliseconds(timeout))
        } catch {
            throw NodeFailure(status: 503, code: "node_unreachable", message: "\(error)", retryable: true)
        }
        var source = ClientSource(iterator: response.body.makeAsyncIterator())
        return try await answer(status: Int(response.status.code), &source, c, gen, requestId: requestId, onEvent: onEvent)
    }

    /// The signed envelope that authorises `body` on `node` for the request's timeout.
    func envelope(for node: Address, body: [UInt8], requestor: Address, requestId: Hash256, timeoutMillis: Int64) -> Envelope {
        var env = Envelope(requestId: requestId, requestor: requestor, gateway: key.address, node: node,
                           bodyHash: Hash256.of(body), expiresAtMillis: SystemClock().nowMillis() + UInt64(timeoutMillis) + 5_000)
        env.sign(key, chainId: chainId)
        return env
    }

    /// Reads a node's answer: its error, or its events up to the receipt.
    func answer<S: BodySource>(status: Int, _ source: inout S, _ c: Candidate, _ gen: GenerateRequest, requestId: Hash256,
                                       onEvent: (NodeEvent) async throws -> Void) async throws -> NodeAnswer {
        guard status == 200 else {
            var bytes: [UInt8] = []
            while bytes.count < 64 * 1024, let piece = try? await source.next() { bytes += piece }
            let e = try? JSONDecoder().decode(NodeErrorBody.self, from: Data(bytes))
            let code = e?.error.code ?? "node_error", message = e?.error.message ?? "node answered \(status)"
            // The request's own faults go back to the client; the rest try another node.
            let clientFault = status == 400 && ["out_of_range", "malformed", "unsupported"].contains(code)
            throw NodeFailure(status: clientFault ? 400 : 503, code: clientFault ? (code == "out_of_range" ? "context_length_exceeded" : code) : code,
                              message: message, retryable: !clientFault, busy: status == 429)
        }
        var buffer: [UInt8] = []
        do {
            while let chunk = try await source.next() {
                buffer += chunk
                var start = 0
                defer { if start > 0 { buffer.removeFirst(start) } }
                while let end = Self.eventEnd(buffer, from: start) {
                    let line = buffer[start..<end]
                    start = end + 2
                    guard line.starts(with: Self.dataPrefix) else { continue }
                    let payload = line.dropFirst(6)
                    let event: NodeEvent
                    if let (t, text) = FastJSON.parseTokenEvent(payload) {
                        event = .token(t, text)
                    } else if let done = FastJSON.parseDoneEvent(payload) {
                        event = NodeEvent(type: "done", finishReason: done.finish, promptTokens: done.promptTokens, receipt: done.receipt)
                        // (A done event with cached tokens takes the decoder's path below.)
                    } else {
                        event = try JSONDecoder().decode(NodeEvent.self, from: Data(payload))
                    }
                    switch event.type {
                    case "token", "text": try await onEvent(event)
                    case "done":
                        // The node's signature is checked by the caller, while the record is being written.
                        guard let receipt = event.receipt, receipt.node == c.node.nodeKey, receipt.requestId == requestId,
                              receipt.priceIn <= c.offer.priceIn, receipt.priceOut <= c.offer.priceOut,
                              receipt.firstOutputToken == UInt64(gen.continuation.count) else {
                            throw NodeFailure(status: 502, code: "bad_receipt", message: "node \(c.node.nodeKey.short) sent an invalid receipt", retryable: true)
                        }
                        return NodeAnswer(receipts: [receipt], finish: event.finishReason ?? "stop", promptTokens: event.promptTokens ?? Int(receipt.inputTokens),
                                          cachedTokens: max(0, min(event.cachedTokens ?? 0, event.promptTokens ?? 0)))
                    default:
                        let code = event.code ?? "node_error"
                        let clientFault = ["out_of_range", "malformed", "unsupported"].contains(code)
                        throw NodeFailure(status: clientFault ? 400 : 502, code: code == "out_of_range" ? "context_length_exceeded" : code,
                                          message: event.message ?? "node error", retryable: !clientFault)
                    }
                }
            }
        } catch let f as NodeFailure {
            throw f
        } catch let e as OpenAIError {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw NodeFailure(status: 502, code: "node_stream_broken", message: "\(error)", retryable: true)
        }
        throw NodeFailure(status: 502, code: "node_stream_broken", message: "node \(c.node.nodeKey.short) ended its stream without finishing", retryable: true)
    }

    static let dataPrefix = Array("data: ".utf8)

    /// Where the event starting at `from` ends (the first blank line), if it has arrived.
    static func eventEnd(_ b: [UInt8], from: Int = 0) -> Int? {
        guard b.count >= from + 2 else { return nil }
        for i in from..<(b.count - 1) where b[i] == 10 && b[i + 1] == 10 { return i }
        return nil
    }
}

/// A node's finished answer: its receipt (a pipeline's: one per shard), why it ended, the
/// prompt tokens it ran (and took from its cache).
struct NodeAnswer {
    var receipts: [Receipt]
    var finish: String
    var promptTokens: Int
    var cachedTokens: Int
}

/// A node's error answer.
struct NodeErrorBody: Decodable {
    struct Inner: Decodable {
        var code: String
        var message: String
    }
    var error: Inner
}

/// A response body read piece by piece.
protocol BodySource {
    mutating func next() async throws -> [UInt8]?
}

struct PipeSource: BodySource {
    let pipe: BytePipe
    mutating func next() async throws -> [UInt8]? { try await pipe.next() }
}

struct ClientSource: BodySource {
    var iterator: HTTPClientResponse.Body.AsyncIterator
    mutating func next() async throws -> [UInt8]? { try await iterator.next().map { Array(buffer: $0) } }
}
