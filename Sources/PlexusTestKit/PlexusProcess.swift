import Foundation
import PlexusCore

/// Runs the real `plexus` binary as a child process, for end-to-end tests.
public final class PlexusProcess: @unchecked Sendable {
    // Invariant: `process` is configured before `run()` and only read after.
    public let process: Process
    public let stderrPath: String

    /// The built `plexus` executable next to the test bundle or in `.build/debug`.
    public static func binaryPath(file: String = #filePath) throws -> String {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["PLEXUS_BINARY"] { candidates.append(env) }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        candidates.append(exe.appendingPathComponent("plexus").path)
        candidates.append(exe.deletingLastPathComponent().appendingPathComponent("plexus").path)
        var root = URL(fileURLWithPath: file)
        while root.pathComponents.count > 1 && !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root = root.deletingLastPathComponent()
        }
        candidates.append(root.appendingPathComponent(".build/debug/plexus").path)
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        throw PlexusError(.notFound, "plexus binary not found (looked in \(candidates)); run `swift build` first")
    }

    /// Starts `plexus args…` with stderr to a file and extra environment.
    public init(_ args: [String], environment: [String: String] = [:], logDirectory: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.binaryPath())
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        stderrPath = logDirectory + "/proc-\(UInt32.random(in: 0...UInt32.max)).log"
        try AtomicFile.write([], to: stderrPath)
        let handle = FileHandle(forWritingAtPath: stderrPath)
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
    }

    /// Sends SIGKILL and waits for the process to end.
    public func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Sends SIGTERM and waits up to `seconds` before SIGKILL.
    public func terminate(seconds: Double = 10) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        kill9()
    }

    /// `terminate` that waits as a task, not blocking a thread of the shared pool (a test's
    /// normal end; its `defer { terminate() }` then has nothing left to wait for).
    public func stop(seconds: Double = 30) async {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        kill9()
    }

    /// What the process printed.
    public var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    // The waits below sleep as tasks rather than block their thread: the tests of a parallel run
    // share a pool of as many threads as cores, and a thread blocked in one test starves the rest.

    /// Runs `plexus args…` to completion and returns (status, output).
    public static func run(_ args: [String], environment: [String: String] = [:], logDirectory: String) async throws -> (Int32, String) {
        let p = try PlexusProcess(args, environment: environment, logDirectory: logDirectory)
        while p.process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        p.process.waitUntilExit()
        return (p.process.terminationStatus, p.log)
    }

    /// Waits until `path` holds a port number, or throws after `seconds`.
    public static func waitForPort(file path: String, seconds: Double = 60, process: PlexusProcess? = nil) async throws -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: path, encoding: .utf8),
               let p = Int(s.trimmingCharacters(in: .whitespacesAndNewlines)), p > 0 {
                return p
            }
            if let process, !process.process.isRunning {
                throw PlexusError(.invalidState, "process exited before listening: \(process.log)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw PlexusError(.invalidState, "no port in \(path) after \(seconds) s")
    }
}
