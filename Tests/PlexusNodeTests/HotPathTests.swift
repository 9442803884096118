import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import PlexusCore
import PlexusEngine
import PlexusLedger
@testable import PlexusHTTP
@testable import PlexusNode
@testable import PlexusWire
import PlexusTestKit
import Synchronization
import Testing

/// The pieces of the request path between gateway and node: the byte pipe,
/// the worker pool, the JSON reader, the final event, batched verification and
/// the pooled HTTP client.
@Suite struct HotPathTests {
    @Test func pipeCoalescesWritesAndEndsOnce() async throws {
        let pipe = BytePipe()
        #expect(pipe.write([1, 2]))
        #expect(pipe.write([3]))
        #expect(try await pipe.next() == [1, 2, 3])
        // A reader waiting before the write gets it.
        async let later = pipe.next()
        try await Task.sleep(for: .milliseconds(20))
        pipe.write([4])
        #expect(try await later == [4])
        pipe.write([5])
        pipe.finish()
        #expect(pipe.write([6]))  // after the end: ignored, but the reader has not gone away
        #expect(try await pipe.next() == [5])
        #expect(try await pipe.next() == nil)
        #expect(try await pipe.next() == nil)

        struct Broken: Error {}
        let failing = BytePipe()
        failing.write([7])
        failing.finish(Broken())
        #expect(try await failing.next() == [7])
        await #expect(throws: Broken.self) { try await failing.next() }

        // A reader that goes away stops the writer and wakes itself.
        let closing = BytePipe()
        async let waiting = closing.next()
        try await Task.sleep(for: .milliseconds(20))
        closing.close()
        #expect(try await waiting == nil)
        #expect(!closing.write([8]))
        #expect(closing.isClosed)
    }

    @Test func workerPoolRunsEveryJobOnBoundedThreads() async throws {
        let pool = WorkerPool(limit: 3, name: "test-pool")
        let done = Atomic<Int>(0)
        let threads = Mutex<Set<String>>([])
        let pipes = (0..<200).map { _ in BytePipe() }
        for (i, p) in pipes.enumerated() {
            pool.submit {
                threads.withLock { _ = $0.insert("\(Unmanaged.passUnretained(Thread.current).toOpaque())") }
                if i % 7 == 0 { usleep(200) }
                done.add(1, ordering: .relaxed)
                p.finish()
            }
        }
        for p in pipes { _ = try await p.next() }
        #expect(done.load(ordering: .relaxed) == 200)
        #expect((1...3).contains(threads.withLock { $0.count }))
    }

    @Test func jsonReaderAgreesWithFoundation() throws {
        let good = [#"{"a":1,"b":[true,false,null],"c":{"d":"e\"\\\/\n\u00e9\ud83d\ude00"},"f":-0.5e+3,"g":[]}"#,
                    " [ 1 , 2.25 , \"x\" ] ", "\"just a string\"", "0", "-12", "1E5", "{}"]
        for text in good {
            let tree = try #require(JSONTree.parse(Array(text.utf8)), "\(text)")
            let foundation = try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)
            #expect(Self.same(tree, foundation), "\(text)")
        }
        // A repeated key is refused (Foundation's two readers disagree on which copy counts).
        #expect(JSONTree.parse(Array(#"{"k":"v","k":"w"}"#.utf8)) == nil)
        let bad = ["", "{", "[1,]", "{\"a\":}", "{'a':1}", "01", "1.", ".5", "-", "1e", "tru", "nul", "[1 2]", "{\"a\" 1}",
                   "\"unterminated", "\"tab\there\"", "\"bad \\q escape\"", "\"\\ud83d alone\"", "[1]x", "{\"a\":1,}", "NaN", "+1"]
        for text in bad { #expect(JSONTree.parse(Array(text.utf8)) == nil, "\(text)") }
        // Invalid UTF-8 and nesting beyond the limit are refused.
        #expect(JSONTree.parse([0x22, 0xFF, 0x22]) == nil)
        #expect(JSONTree.parse(Array((String(repeating: "[", count: 40) + String(repeating: "]", count: 40)).utf8)) == nil)
        #expect(JSONTree.parse(Array((String(repeating: "[", count: 10) + String(repeating: "]", count: 10)).utf8)) != nil)
        // Numbers: integers only where written as integers, and in range.
        #expect(JSONTree.number("16").int == 16 && JSONTree.number("16.0").int == nil && JSONTree.number("1e2").int == nil)
        #expect(JSONTree.number("99999999999999999999").int64 == nil && JSONTree.number("-1").uint64 == nil)
        #expect(JSONTree.number("0.25").double == 0.25 && JSONTree.number("1e999").double == nil)
    }

    static func same(_ t: JSONTree, _ f: Any) -> Bool {
        switch t {
        case let .object(members):
            guard let d = f as? [String: Any] else { return false }
            var last: [String: JSONTree] = [:]
            for (k, v) in members { last[k] = v }
            return last.count == d.count && last.allSatisfy { k, v in d[k].map { same(v, $0) } ?? false }
        case let .array(items):
            guard let a = f as? [Any], a.count == items.count else { return false }
            return zip(items, a).allSatisfy { same($0, $1) }
        case let .string(s): return (f as? String) == s
        case let .number(n):
            if let i = f as? Int { return Double(i) == Double(n) }
            if let d = f as? Double { return d == Double(n) }
            return (f as? NSNumber).map { $0.doubleValue == Double(n) } ?? false
        case let .bool(b): return (f as? Bool) == b
        case .null: return f is NSNull
        }
    }

    @Test func generateRequestsRoundTripThroughBothReaders() throws {
        var rng = SeededGenerator(seed: 11)
        let texts = ["hello", "quote \" backslash \\ newline \n tab \t", "emoji 👩🏽‍💻 é", "\u{1}\u{1f}", ""]
        for i in 0..<300 {
            let pick = { texts[Int(rng.next() % UInt64(texts.count))] }
            let chat = i % 2 == 0
            let r = GenerateRequest(model: "m-\(pick())", messages: chat ? (0..<Int(rng.next() % 3 + 1)).map { _ in ChatMessage(role: pick(), content: pick()) } : nil,
                                    prompt: chat ? nil : pick(), continuation: (0..<Int(rng.next() % 5)).map { _ in TokenID(truncatingIfNeeded: rng.next() % 200_000) - 1 },
                                    maxTokens: Int(rng.next() % 4096) + 1, temperature: Double(rng.next() % 201) / 100, topP: Double(rng.next() % 100 + 1) / 100,
                                    seed: rng.next(), stop: (0..<Int(rng.next() % 3)).map { _ in pick() })
            let written = r.json
            #expect(try GenerateRequest.decode(written) == r)
            #expect(try JSONDecoder().decode(GenerateRequest.self, from: Data(written)) == r)
            #expect(GenerateRequest(tree: try #require(JSONTree.parse(written))) == r)
            // What the generic encoder writes reads the same way.
            #expect(try GenerateRequest.decode(Array(JSONEncoder.compact.encode(r))) == r)
        }
        // Documents the hand-written reader leaves to JSONDecoder still decode, or fail as before.
        let spaced = Array(#"{ "model" : "m", "continuation" : [ ], "maxTokens" : 4, "temperature" : 0, "topP" : 1, "seed" : 0, "stop" : [ ], "messages" : null }"#.utf8)
        #expect(try GenerateRequest.decode(spaced).maxTokens == 4)
        #expect(throws: (any Error).self) { try GenerateRequest.decode(Array(#"{"model":"m"}"#.utf8)) }
        #expect(throws: (any Error).self) { try GenerateRequest.decode(Array(#"{"model":"m","continuation":[1e99],"maxTokens":1,"temperature":0,"topP":1,"seed":0,"stop":[]}"#.utf8)) }
    }

    @Test func finalEventsCarryTheReceiptExactly() throws {
        let node = KeyPair.deterministic("node")
        var receipt = Receipt(requestId: Hash256.of([1]), requestHash: Hash256.of([2]), requestor: KeyPair.deterministic("r").address,
                              node: node.address, modelHash: Hash256.of([3]), inputTokens: 12, outputTokens: 7, firstOutputToken: 3,
                              priceIn: Amount(units: 5), priceOut: Amount(units: 9), outputHash: Hash256.of([4]), timeMillis: 1_700_000_000_000)
        receipt.signAsNode(node, chainId: "c")
        for finish in ["stop", "length", "eos"] {
            let event = FastJSON.doneEvent(finish: finish, promptTokens: 12, receipt: receipt)
            #expect(event.starts(with: Array("data: ".utf8)) && event.suffix(2) == [10, 10])
            let line = event.dropFirst(6).dropLast(2)
            let fast = try #require(FastJSON.parseDoneEvent(line))
            #expect(fast.finish == finish && fast.promptTokens == 12 && fast.receipt == receipt)
            let generic = try JSONDecoder().decode(NodeEvent.self, from: Data(line))
            #expect(generic.type == "done" && generic.finishReason == finish && generic.receipt == receipt)
        }
        // The object form (what `NodeEvent.sse` writes) still reads.
        let object = NodeEvent(type: "done", finishReason: "stop", promptTokens: 1, receipt: receipt).sse
        #expect(try JSONDecoder().decode(NodeEvent.self, from: Data(object.dropFirst(6).dropLast(2))).receipt == receipt)
        // Damaged events are not taken for receipts.
        let good = Array(FastJSON.doneEvent(finish: "stop", promptTokens: 12, receipt: receipt).dropFirst(6).dropLast(2))
        var flipped = good
        flipped[flipped.count - 10] = flipped[flipped.count - 10] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        if let parsed = FastJSON.parseDoneEvent(flipped[...]) { #expect(parsed.receipt != receipt) }
        #expect(FastJSON.parseDoneEvent(good.dropLast(3)) == nil)
        #expect(FastJSON.parseDoneEvent(Array(#"{"type":"done","finishReason":"stop","promptTokens":x,"receiptBytes":"00"}"#.utf8)[...]) == nil)
    }

    @Test func batchedVerificationAnswersAsSingleVerification() async throws {
        let keys = (0..<4).map { KeyPair.deterministic("k\($0)") }
        let batcher = SignatureBatcher()
        var cases: [(Signature, Address, [UInt8], Bool)] = []
        for i in 0..<120 {
            let k = keys[i % keys.count]
            let message = Array("message \(i)".utf8)
            var sig = k.sign(message)
            if i % 5 == 0 {
                var b = sig.bytes
                b[i % 64] ^= 1
                sig = try Signature(bytes: b)
            }
            let signer = i % 11 == 0 ? keys[(i + 1) % keys.count].address : k.address
            cases.append((sig, signer, message, signer.verifies(sig, over: message)))
        }
        #expect(cases.contains { $0.3 } && cases.contains { !$0.3 })
        // At once; deferred (the first caller's batch waits, so most arrive before it
        // runs); deferred on an event loop where there is one (none here: at once).
        let deferred = SignatureBatcher(later: { work in
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(5)) { work() }
            return true
        })
        let onLoop = SignatureBatcher(later: SignatureBatcher.onEventLoop)
        for b in [batcher, deferred, onLoop] {
            let answers = await withTaskGroup(of: (Int, Bool).self) { group in
                for (i, c) in cases.enumerated() { group.addTask { (i, await b.verify(c.0, by: c.1, over: c.2)) } }
                var out = [Bool](repeating: false, count: cases.count)
                for await (i, ok) in group { out[i] = ok }
                return out
            }
            #expect(answers == cases.map(\.3))
        }
        // Checked now on this thread, and on another thread collected later.
        #expect(cases.map { batcher.verifyNow($0.0, by: $0.1, over: $0.2) } == cases.map(\.3))
        let later = cases.map { c in Background { batcher.verifyNow(c.0, by: c.1, over: c.2) } }
        #expect(later.map { $0.wait() } == cases.map(\.3))
        #expect(later.map { $0.wait() } == cases.map(\.3))
    }

    /// A small server: `/n/{count}` streams `count` chunks; `/close` answers and closes the connection; `/slow` waits.
    static func withServer(_ body: @Sendable (Int) async throws -> Void) async throws {
        let router = Router()
        router.post("/n/:count") { request, context -> Response in
            let n = context.parameters.get("count", as: Int.self) ?? 1
            var request = request
            let got = try await request.collectBody(upTo: 1 << 20).readableBytes
            return Response(status: .ok, body: ResponseBody { writer in
                for i in 0..<n { try await writer.write(ByteBuffer(string: "\(i):\(got);")) }
                try await writer.finish(nil)
            })
        }
        router.post("/close") { _, _ -> Response in
            Response(status: .ok, headers: [.connection: "close"], body: .init(byteBuffer: ByteBuffer(string: "bye")))
        }
        router.post("/slow") { _, _ -> Response in
            try await Task.sleep(for: .seconds(5))
            return Response(status: .ok)
        }
        let port = Mutex<Int>(0)
        var quiet = Logger(label: "test-server")
        quiet.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ch in port.withLock { $0 = ch.localAddress?.port ?? 0 } }, logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            var waited = 0
            while port.withLock({ $0 }) == 0, waited < 12_000 {  // up to 120 s: a loaded run binds late
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            try await body(port.withLock { $0 })
            group.cancelAll()
        }
    }

    @Test func pooledClientReusesConnectionsAndSurvivesClosesAndTimeouts() async throws {
        try await Self.withServer { port in
            let client = PlainHTTPClient()
            defer { client.closeIdle() }
            let target = try #require(PlainHTTPClient.Target(url: "http://127.0.0.1:\(port)"))
            func read(_ r: PlainHTTPClient.Response) async throws -> String {
                String(decoding: try await r.body.collect(), as: UTF8.self)
            }
            // Whole responses, many in a row and concurrently.
            for n in [1, 3, 50] {
                let text = try await client.post(target, path: "/n/\(n)", headers: [], body: [1, 2, 3], timeout: .seconds(60)) { r in
                    #expect(r.status == 200)
                    return try await read(r)
                }
                #expect(text == (0..<n).map { "\($0):3;" }.joined())
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<40 {
                    group.addTask {
                        let text = try await client.post(target, path: "/n/2", headers: [], body: [UInt8](repeating: 7, count: i), timeout: .seconds(60)) { try await read($0) }
                        #expect(text == "0:\(i);1:\(i);")
                    }
                }
                try await group.waitForAll()
            }
            // A consumer that stops early leaves the connection to finish on its own; the next requests still work.
            for _ in 0..<5 {
                let first = try await client.post(target, path: "/n/200", headers: [], body: [], timeout: .seconds(60)) { r in try await r.body.next() }
                #expect(first?.isEmpty == false)
                #expect(try await client.post(target, path: "/n/1", headers: [], body: [9], timeout: .seconds(60)) { try await read($0) } == "0:1;")
            }
            // A server that closes after answering: the next request opens a new connection.
            for _ in 0..<3 {
                #expect(try await client.post(target, path: "/close", headers: [], body: [], timeout: .seconds(60)) { try await read($0) } == "bye")
                #expect(try await client.post(target, path: "/n/1", headers: [], body: [], timeout: .seconds(60)) { try await read($0) } == "0:0;")
            }
            // A timeout ends the exchange with an error.
            let start = Date()
            await #expect(throws: (any Error).self) {
                try await client.post(target, path: "/slow", headers: [], body: [], timeout: .milliseconds(200)) { try await read($0) }
            }
            #expect(Date().timeIntervalSince(start) < 3)
            // Nothing listening: an error, not a hang.
            let closed = try #require(PlainHTTPClient.Target(url: "http://127.0.0.1:1"))
            await #expect(throws: (any Error).self) {
                try await client.post(closed, path: "/", headers: [], body: [], timeout: .seconds(2)) { try await read($0) }
            }
        }
        // URLs other than plain http are not taken.
        #expect(PlainHTTPClient.Target(url: "https://example.org") == nil)
        #expect(PlainHTTPClient.Target(url: "http://") == nil && PlainHTTPClient.Target(url: "http://h:99999") == nil)
        #expect(PlainHTTPClient.Target(url: "http://h:8080/x") == PlainHTTPClient.Target(url: "http://h:8080"))
        #expect(PlainHTTPClient.Target(url: "http://h")?.port == 80)
    }

    /// Answers every connection with `reply` once the request head is in, then closes.
    final class RawReply: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let reply: [UInt8]
        var seen: [UInt8] = []
        init(_ reply: [UInt8]) { self.reply = reply }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var b = unwrapInboundIn(data)
            seen += b.readBytes(length: b.readableBytes) ?? []
            guard String(decoding: seen, as: UTF8.self).contains("\r\n\r\n") else { return }
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: reply))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// A status no HTTP/1.1 server may send (outside 100...599; SwiftNIO's decoder reads `020`
    /// as 20) is an error, not a response (found by the `http-client` fuzz target).
    @Test func pooledClientRefusesInvalidStatuses() async throws {
        for (reply, ok) in [("HTTP/1.1 020 OK", false), ("HTTP/1.1 099 X", false), ("HTTP/1.1 600 X", false), ("HTTP/1.1 204 No Content", true)] {
            let bytes = Array((reply + "\r\ncontent-length: 0\r\n\r\n").utf8)
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(RawReply(bytes)) } }
                .bind(host: "127.0.0.1", port: 0).get()
            defer { server.close(promise: nil) }
            let client = PlainHTTPClient()
            defer { client.closeIdle() }
            let target = try #require(PlainHTTPClient.Target(url: "http://127.0.0.1:\(server.localAddress?.port ?? 0)"))
            let status = try? await client.post(target, path: "/", headers: [], body: [], timeout: .seconds(10)) { r in
                _ = try await r.body.collect()
                return r.status
            }
            #expect((status != nil) == ok, "\(reply): \(String(describing: status))")
        }
    }

    @Test func leanServerAnswersInOrderLimitsBodiesAndStopsStreamsForGoneClients() async throws {
        let stopped = Atomic<Bool>(false)
        let server = PlainHTTPServer(host: "127.0.0.1", port: 0, maxBody: 1_000, name: "test") { request in
            switch (request.method, request.path) {
            case (.POST, "/echo"):
                return .full(status: 200, headers: [("x-query", request.query ?? "")], body: request.body)
            case (.GET, "/forever"):
                let pipe = BytePipe()
                Thread.detachNewThread {
                    for _ in 0..<100_000 where pipe.write(Array("tick\n".utf8)) { usleep(1_000) }
                    stopped.store(true, ordering: .relaxed)
                    pipe.finish()
                }
                return .stream(status: 200, headers: [], body: pipe)
            case (.GET, "/few"):
                let pipe = BytePipe()
                Thread.detachNewThread {
                    for i in 0..<5 { pipe.write(Array("\(i);".utf8)) }
                    pipe.finish()
                }
                return .stream(status: 201, headers: [("content-type", "text/plain")], body: pipe)
            default:
                return .full(status: 404, headers: [], body: [])
            }
        }
        let port = Mutex<Int>(0)
        let run = Task { try await server.run { p in port.withLock { $0 = p } } }
        defer { run.cancel() }
        // Up to 120 s for the server to bind: a loaded run once took longer than the 5 s this waited.
        var waited = 0
        while port.withLock({ $0 }) == 0, waited < 12_000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        try #require(port.withLock { $0 } != 0, "the server did not bind")
        let target = try #require(PlainHTTPClient.Target(url: "http://127.0.0.1:\(port.withLock { $0 })"))
        let client = PlainHTTPClient()
        defer { client.closeIdle() }
        // Generous limits: the suite runs on slow, busy machines (only the timeout checks are short).
        func call(_ path: String, body: [UInt8] = [], timeout: TimeAmount = .seconds(60)) async throws -> (Int, String) {
            try await client.post(target, path: path, headers: [], body: body, timeout: timeout) { r in
                (r.status, String(decoding: try await r.body.collect(), as: UTF8.self))
            }
        }
        // Bodies come back whole, on reused connections, also many at once.
        for i in 0..<20 { #expect(try await call("/echo?n=\(i)", body: Array("body \(i)".utf8)) == (200, "body \(i)")) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<30 {
                group.addTask {
                    let letter = UInt8(65 + i % 26)
                    let (status, text) = try await call("/echo", body: Array(repeating: letter, count: i))
                    #expect(status == 200 && text == String(decoding: Array(repeating: letter, count: i), as: UTF8.self))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await call("/nowhere").0 == 404)
        // Pipelined requests on one connection are answered in order.
        let raw = try await Self.rawExchange(port: port.withLock { $0 }, Array((
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nfirst" +
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nsecond" +
            "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5\r\n\r\nthird").utf8))
        let order = ["first", "second", "third"].map { raw.range(of: "\r\n\r\n" + $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && order[0]! < order[1]! && order[1]! < order[2]!, "\(raw)")
        // Over the limit: 413, and the next request still works.
        #expect(try await call("/echo", body: [UInt8](repeating: 1, count: 1_001)).0 == 413)
        #expect(try await call("/echo", body: [UInt8](repeating: 66, count: 1_000)) == (200, String(repeating: "B", count: 1_000)))

        // Streams arrive whole with their status and headers (the client sends POST: route by method).
        let few = try await client.post(target, path: "/few", headers: [], body: [], timeout: .seconds(60)) { r in r.status }
        #expect(few == 404)
        // A client that goes away stops the producer.
        await #expect(throws: (any Error).self) {
            _ = try await Self.get(port: port.withLock { $0 }, path: "/forever", timeout: .milliseconds(300))
        }
        var polls = 0
        while !stopped.load(ordering: .relaxed), polls < 300 {
            try await Task.sleep(for: .milliseconds(10))
            polls += 1
        }
        let didStop = stopped.load(ordering: .relaxed)
        #expect(didStop)
        #expect(try await Self.get(port: port.withLock { $0 }, path: "/few", timeout: .seconds(60)) == (201, "0;1;2;3;4;"))
    }

    /// Writes `bytes` on a new connection and returns everything read until the server closes it.
    static func rawExchange(port: Int, _ bytes: [UInt8]) async throws -> String {
        final class Collect: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            let pipe: BytePipe
            init(_ pipe: BytePipe) { self.pipe = pipe }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) { pipe.write(Array(buffer: unwrapInboundIn(data))) }
            func channelInactive(context: ChannelHandlerContext) { pipe.finish() }
        }
        let pipe = BytePipe()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collect(pipe)) } }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
        return String(decoding: try await pipe.collect(), as: UTF8.self)
    }

    /// A GET on a fresh client, whose timeout covers the whole answer.
    static func get(port: Int, path: String, timeout: TimeAmount) async throws -> (Int, String) {
        let client = PlainHTTPClient()
        defer { client.closeIdle() }
        let target = try #require(PlainHTTPClient.Target(url: "http://127.0.0.1:\(port)"))
        return try await client.send(target, method: .GET, path: path, headers: [], body: [], timeout: timeout) { r in
            (r.status, String(decoding: try await r.body.collect(), as: UTF8.self))
        }
    }
}
