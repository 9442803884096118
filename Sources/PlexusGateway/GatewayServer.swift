import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PlexusCore
import PlexusLedger
import PlexusNode

/// The gateway's HTTP API: OpenAI-compatible `POST /v1/chat/completions`,
/// `POST /v1/completions` and `GET /v1/models`, plus `GET /v1/receipts/{id}`,
/// `/health` and `/metrics`.
public struct GatewayServer: Sendable {
    public let gateway: Gateway
    public let metrics: @Sendable () -> [UInt8]

    public init(gateway: Gateway, metrics: @escaping @Sendable () -> [UInt8]) {
        self.gateway = gateway
        self.metrics = metrics
    }

    static func response(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        var buf = ByteBuffer()
        buf.writeBytes(bytes)
        return Response(status: status, headers: h, body: .init(byteBuffer: buf))
    }

    static func error(_ e: OpenAIError) -> Response {
        GatewayMetrics.errors.increment()
        var h: HTTPFields = [:]
        if let r = e.retryAfter { h[.retryAfter] = String(r) }
        return response(e.json, status: .init(code: e.status), headers: h)
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        let g = gateway, metrics = self.metrics
        router.get("/health") { _, _ -> Response in
            Self.response(OpenAIShapes.data(["status": "ok", "gateway": g.config.key.address.text, "chain": g.chainId,
                                             "models": g.directory.servedModels().sorted()]))
        }
        router.get("/metrics") { _, _ -> Response in
            var buf = ByteBuffer()
            buf.writeBytes(metrics())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: buf))
        }
        router.get("/v1/models") { request, _ -> Response in
            do { _ = try g.account(forAuthorization: request.headers[.authorization]) } catch let e as OpenAIError { return Self.error(e) }
            let served = g.directory.servedModels()
            let data: [[String: Any]] = g.directory.allModels().filter { served.contains($0.id) }.map {
                ["id": $0.id, "object": "model", "created": 0, "owned_by": $0.creator.text, "context_length": Int($0.contextLength)]
            }
            return Self.response(OpenAIShapes.data(["object": "list", "data": data]))
        }
        router.get("/v1/receipts/:id") { request, context -> Response in
            do { _ = try g.account(forAuthorization: request.headers[.authorization]) } catch let e as OpenAIError { return Self.error(e) }
            guard let raw = context.parameters.get("id"), let id = try? Hash256(hex: raw), let record = try g.store.get(id) else {
                return Self.error(OpenAIError(404, "invalid_request_error", "not_found", "No request with that id."))
            }
            var settlement: Settlement?
            if record.state != "unsettled" { settlement = try? await g.ledger.settlement(id) }
            struct View: Encodable { var request: RequestRecord; var settlement: Settlement? }
            return Self.response(Array(try JSONEncoder.compact.encode(View(request: record, settlement: settlement))))
        }
        router.post("/v1/chat/completions") { request, _ in await Self.complete(g, request, chat: true) }
        router.post("/v1/completions") { request, _ in await Self.complete(g, request, chat: false) }
        return router
    }

    /// A box for the pieces stream's iterator, handed from the handler to the body writer.
    final class PieceIterator: @unchecked Sendable {
        // Invariant: used by one task at a time (the handler, then the body writer).
        var iterator: AsyncStream<Piece>.Iterator
        init(_ it: AsyncStream<Piece>.Iterator) { iterator = it }
    }

    enum Piece: Sendable {
        case text(String)
        case done(finish: String, prompt: Int, completion: Int, node: Address, attempts: Int)
        case failed(OpenAIError)
    }

    static func complete(_ g: Gateway, _ request: Request, chat: Bool) async -> Response {
        var request = request
        let requestor: Address
        let req: ChatRequest
        do {
            requestor = try g.account(forAuthorization: request.headers[.authorization])
            let body: ByteBuffer
            do { body = try await request.collectBody(upTo: 1 << 20) } catch {
                throw OpenAIError(413, "invalid_request_error", "request_too_large", "The request body exceeds 1 MiB.")
            }
            do {
                let bytes = Array(buffer: body)
                if let tree = JSONTree.parse(bytes), let r = ChatRequest(tree: tree) {
                    req = r
                } else {
                    req = try JSONDecoder().decode(ChatRequest.self, from: Data(bytes))
                }
            } catch let e as PlexusError {
                throw OpenAIError.invalid(e.message)
            } catch {
                throw OpenAIError.invalid("We could not parse the JSON body of your request: \(LedgerAPI.describe(error))", code: "invalid_json")
            }
        } catch let e as OpenAIError {
            return error(e)
        } catch {
            return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
        }
        let requestId = g.newRequestId()
        let completionId = (chat ? "chatcmpl-" : "cmpl-") + requestId.hex.prefix(24)
        let created = Int(Date().timeIntervalSince1970)
        var headers: HTTPFields = [HTTPField.Name("x-plexus-request-id")!: requestId.hex]
        let model = req.model
        // Hand-written JSON (see FastJSON): one chunk per token.
        let head = "{\"id\":\"\(completionId)\",\"object\":\"\(chat ? "chat.completion.chunk" : "text_completion")\",\"created\":\(created),\"model\":\(FastJSON.quote(model)),"
        @Sendable func chunk(_ content: String?, role: Bool = false, finish: String?) -> [UInt8] {
            let f = finish.map { FastJSON.quote($0) } ?? "null"
            let body: String
            if chat {
                var delta = role ? "\"role\":\"assistant\"," : ""
                if let content { delta += "\"content\":" + FastJSON.quote(content) }
                if delta.hasSuffix(",") { delta.removeLast() }
                body = head + "\"choices\":[{\"index\":0,\"delta\":{\(delta)},\"finish_reason\":\(f)}]}"
            } else {
                body = head + "\"choices\":[{\"index\":0,\"text\":\(FastJSON.quote(content ?? "")),\"logprobs\":null,\"finish_reason\":\(f)}]}"
            }
            return Array(("data: " + body + "\n\n").utf8)
        }
        @Sendable func usage(_ p: Int, _ c: Int) -> String {
            "{\"prompt_tokens\":\(p),\"completion_tokens\":\(c),\"total_tokens\":\(p + c)}"
        }

        if req.stream != true {
            // One answer: served in this task, no stream between.
            let r: ServeResult
            do {
                r = try await g.serve(req, chat: chat, requestor: requestor, requestId: requestId) { _ in }
            } catch let e as OpenAIError {
                return error(e)
            } catch is CancellationError {
                return error(OpenAIError(499, "api_error", "cancelled", "The client went away."))
            } catch {
                return Self.error(OpenAIError(500, "api_error", "internal_error", "\(error)"))
            }
            headers[HTTPField.Name("x-plexus-node")!] = r.lastNode.text
            headers[HTTPField.Name("x-plexus-attempts")!] = String(r.attempts)
            let choice = chat
                ? "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(FastJSON.quote(r.text))},\"logprobs\":null,\"finish_reason\":\(FastJSON.quote(r.finish))}"
                : "{\"index\":0,\"text\":\(FastJSON.quote(r.text)),\"logprobs\":null,\"finish_reason\":\(FastJSON.quote(r.finish))}"
            let json = "{\"id\":\"\(completionId)\",\"object\":\"\(chat ? "chat.completion" : "text_completion")\",\"created\":\(created),"
                + "\"model\":\(FastJSON.quote(model)),\"choices\":[\(choice)],\"usage\":\(usage(r.promptTokens, r.completionTokens))}"
            return response(Array(json.utf8), headers: headers)
        }

        let (stream, cont) = AsyncStream.makeStream(of: Piece.self, bufferingPolicy: .unbounded)
        let task = Task {
            do {
                let r = try await g.serve(req, chat: chat, requestor: requestor, requestId: requestId) { piece in cont.yield(.text(piece)) }
                cont.yield(.done(finish: r.finish, prompt: r.promptTokens, completion: r.completionTokens, node: r.lastNode, attempts: r.attempts))
            } catch let e as OpenAIError {
                cont.yield(.failed(e))
            } catch is CancellationError {
                cont.yield(.failed(OpenAIError(499, "api_error", "cancelled", "The client went away.")))
            } catch {
                cont.yield(.failed(OpenAIError(500, "api_error", "internal_error", "\(error)")))
            }
            cont.finish()
        }
        cont.onTermination = { _ in task.cancel() }
        let box = PieceIterator(stream.makeAsyncIterator())
        // Streaming: wait for the first piece so that errors before any output keep their status.
        let first = await box.iterator.next()
        if case let .failed(e)? = first { return error(e) }
        let includeUsage = req.streamOptions?.includeUsage == true
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        let body = ResponseBody { writer in
            func write(_ b: [UInt8]) async throws { try await writer.write(ByteBuffer(bytes: b)) }
            var pending = first
            if chat { try await write(chunk("", role: true, finish: nil)) }
            while let p = pending {
                switch p {
                case let .text(t): try await write(chunk(t, finish: nil))
                case let .failed(e):
                    // After output has started the status is sent; say what happened in the stream.
                    try await write(OpenAIShapes.sse(["error": ["message": e.message, "type": e.type, "code": e.code, "param": NSNull()]]))
                    try await writer.finish(nil)
                    return
                case let .done(finish, prompt, completion, _, _):
                    try await write(chunk(nil, finish: finish))
                    if includeUsage {
                        try await write(Array(("data: " + head + "\"choices\":[],\"usage\":\(usage(prompt, completion))}\n\n").utf8))
                    }
                }
                pending = await box.iterator.next()
            }
            try await write(OpenAIShapes.done)
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// Serves until a shutdown signal, settling in the background.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let g = gateway
        let settler = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(g.config.settleIntervalMillis)))
                await g.settleOnce()
                try? await g.directory.refresh()
            }
        }
        var logger = g.logger
        logger.logLevel = max(g.logger.logLevel, .notice)
        let app = Application(router: router(), configuration: .init(address: .hostname(g.config.host, port: g.config.port), serverName: "plexus-gateway"),
                              onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) }, logger: logger)
        do {
            try await app.runService()
        } catch {
            settler.cancel()
            throw error
        }
        settler.cancel()
        // One last settlement round, bounded: what is left is resubmitted on the next start.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await g.settleOnce() }
            group.addTask { try? await Task.sleep(for: .seconds(3)) }
            await group.next()
            group.cancelAll()
        }
        await g.shutdown()
    }
}
