import Foundation
import NIOCore
import PlexusCore
import PlexusHTTP

/// HTTP/1.1 framing, both ways, through real loopback sockets: the project's server (SwiftNIO's
/// decoder with `PlainHTTPServer`'s handler: deadlines, body limit, per-address quota) reads
/// whatever bytes a client sends, and its client (`PlainHTTPClient`) reads whatever bytes a
/// server answers.
extension Fuzz {
    /// Runs `body` to its end from the fuzzer's (synchronous) callback.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        let box = Locked<T?>(nil)
        Task {
            box.value = await body()
            done.signal()
        }
        done.wait()
        return box.value!
    }

    /// A server on loopback whose handler answers each request with what it read (method,
    /// path, body size): started once, on first use.
    static let serverPort: Int = {
        let port = Locked(0)
        let listening = DispatchSemaphore(value: 0)
        var limits = ConnectionLimits()
        limits.perAddress = 100_000
        let server = PlainHTTPServer(host: "127.0.0.1", port: 0, maxBody: 4_096, name: "plexus-fuzz", limits: limits) { request in
            if request.path == "/stream" {
                let pipe = BytePipe()
                _ = pipe.write(Array("data: \(request.body.count)\n\n".utf8))
                pipe.finish()
                return .stream(status: 200, headers: [("content-type", "text/event-stream")], body: pipe)
            }
            return .json(Array("{\"method\":\"\(request.method)\",\"path\":\(request.path.utf8.count),\"body\":\(request.body.count)}".utf8))
        }
        Task.detached {
            try? await server.run { p in
                port.value = p
                listening.signal()
            }
        }
        listening.wait()
        return port.value
    }()

    /// A blocking loopback connection with a receive deadline.
    static func connect(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { close(fd); return nil }
        var tv = timeval(tv_sec: 0, tv_usec: 10_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Writes `bytes` and reads what the server answers: until it closes, or until it has been
    /// quiet for 10 ms after whole answers (a kept-alive connection waits for more; an answer
    /// begun but not whole is waited for), or 3 s.
    /// The sending side stays open: the server, as others do, takes a client's FIN for its
    /// going away.
    static func exchange(_ port: Int, _ bytes: [UInt8]) -> [UInt8]? {
        guard let fd = connect(port) else { return nil }
        defer { close(fd) }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { break }
            sent += n
        }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let deadline = Date().addingTimeInterval(3)
        while out.count < 1 << 20 && Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                out += buffer[0..<n]
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                if wellFormedResponses(out) { break }
            } else {
                break
            }
        }
        return out
    }

    nonisolated(unsafe) static var inputs = 0

    /// The server reads any bytes: whatever it answers is a sequence of well-formed HTTP/1.1
    /// responses (status line, headers, then a body framed by its length or by chunks), and it
    /// still serves a proper request afterwards.
    static func httpServer(_ bytes: [UInt8]) {
        let port = serverPort
        guard let answer = exchange(port, bytes) else { return }
        if !answer.isEmpty { require(wellFormedResponses(answer), "malformed answer to \(String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription): \(String(decoding: answer.prefix(300), as: UTF8.self).debugDescription)") }
        inputs += 1
        if inputs % 200 == 0 {
            let probe = exchange(port, Array("GET /probe HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".utf8)) ?? []
            require(String(decoding: probe.prefix(12), as: UTF8.self) == "HTTP/1.1 200", "the server stopped serving: \(String(decoding: probe.prefix(200), as: UTF8.self).debugDescription)")
        }
    }

    /// Whether `bytes` are complete HTTP/1.1 responses, one after another (the last may be cut
    /// where the connection closed while it streamed).
    static func wellFormedResponses(_ bytes: [UInt8]) -> Bool {
        var i = 0
        let crlf2: [UInt8] = [13, 10, 13, 10]
        while i < bytes.count {
            guard let headEnd = find(crlf2, in: bytes, from: i) else { return false }
            let head = String(decoding: bytes[i..<headEnd], as: UTF8.self)
            let lines = head.components(separatedBy: "\r\n")
            let status = lines[0].split(separator: " ", maxSplits: 2)
            guard status.count >= 2, status[0] == "HTTP/1.1", status[1].count == 3, let code = Int(status[1]), (100...599).contains(code) else { return false }
            var length: Int?
            var chunked = false
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { return false }
                let name = line[..<colon].lowercased(), value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if name == "content-length" { guard let n = Int(value), n >= 0 else { return false }; length = n }
                if name == "transfer-encoding" && value.lowercased() == "chunked" { chunked = true }
            }
            i = headEnd + 4
            if chunked {
                while true {
                    guard let lineEnd = find([13, 10], in: bytes, from: i) else { return true }  // cut while streaming
                    guard let size = Int(String(decoding: bytes[i..<lineEnd], as: UTF8.self), radix: 16) else { return false }
                    i = lineEnd + 2 + size + 2
                    if i > bytes.count { return true }
                    if size == 0 { break }
                }
            } else if let length {
                i += length
                if i > bytes.count { return false }
            } else if code >= 200 && code != 204 && code != 304 {
                return true  // delimited by the connection's close
            }
        }
        return true
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= needle.count, from <= bytes.count - needle.count else { return nil }
        var i = from
        while i <= bytes.count - needle.count {
            if bytes[i] == needle[0] && Array(bytes[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    /// A loopback server that answers every connection with the bytes of the current input.
    static let replyServer: (port: Int, reply: Locked<[UInt8]>) = {
        let reply = Locked<[UInt8]>([])
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 64)
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        Thread.detachNewThread {
            while true {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                // The request head, then the reply, then the close.
                var seen: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4_096)
                var tv = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                while find([13, 10, 13, 10], in: seen, from: 0) == nil {
                    let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                    guard n > 0 else { break }
                    seen += buffer[0..<n]
                }
                let bytes = reply.value
                _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                shutdown(c, Int32(SHUT_RDWR))
                close(c)
            }
        }
        return (Int(UInt16(bigEndian: bound.sin_port)), reply)
    }()

    static let client = PlainHTTPClient()

    /// The client reads any answer: it returns a response (status 100...599, its body read
    /// to the end or to an error) or throws, within its deadline, and never crashes.
    static func httpClient(_ bytes: [UInt8]) {
        let server = replyServer
        server.reply.value = bytes
        let target = PlainHTTPClient.Target(url: "http://127.0.0.1:\(server.port)")!
        let started = Date()
        let status: Int? = blocking {
            try? await client.post(target, path: "/v1/generate", headers: [], body: Array("{}".utf8), timeout: .seconds(2)) { r in
                _ = try? await r.body.collect()
                return r.status
            }
        }
        if let status { require((100...599).contains(status), "status \(status)") }
        require(Date().timeIntervalSince(started) < 8, "the client took \(Date().timeIntervalSince(started)) s past its 2 s deadline")
    }
}
