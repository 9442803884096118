import Foundation
import PlexusCore
import PlexusTestKit
import Testing

/// `plexus up` and its children stop on signals, and never outlive `up`. Run against
/// the release binary too (`PLEXUS_BINARY=.build/release/plexus`, as `.ci/run` does):
/// an optimised build once released the signal sources and ignored Ctrl-C.
@Suite(.serialized) struct SignalTests {
    /// A process is gone once it has no /proc entry or is a zombie waiting for a reaper.
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Waits until none of `pids` is alive, up to `seconds`; returns those still alive.
    static func waitGone(_ pids: [Int32], seconds: Double) -> [Int32] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, pids.contains(where: alive) { usleep(50_000) }
        return pids.filter(alive)
    }

    /// Starts `plexus up --backend echo` and returns it with its children's pids.
    static func startUp(_ dir: TemporaryDirectory) async throws -> (PlexusProcess, [Int32]) {
        let up = try PlexusProcess(["up", "--dir", dir.path + "/up", "--port", "0", "--backend", "echo"],
                                   environment: ["PLEXUS_HOME": dir.path + "/home"], logDirectory: dir.path)
        let info = try await NetworkTests.waitForNetwork(up, directory: dir.path + "/up", seconds: 120)
        #expect(info.pids.count == 6)  // ledger, three nodes, gateway, explorer
        return (up, info.pids)
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func upStopsTheWholeNetworkOnASignal(_ sig: Int32) async throws {
        let dir = try TemporaryDirectory("plexus-signal")
        defer { dir.remove() }
        let (up, pids) = try await Self.startUp(dir)
        defer { for p in pids where Self.alive(p) { kill(p, SIGKILL) }; up.kill9() }
        kill(up.process.processIdentifier, sig)
        let left = Self.waitGone([up.process.processIdentifier] + pids, seconds: 25)
        #expect(left.isEmpty, "still running after signal \(sig): \(left)\n\(up.log.suffix(1_500))")
        up.process.waitUntilExit()
        #expect(up.process.terminationReason == .exit && up.process.terminationStatus == 0, "\(up.log.suffix(1_500))")
        // Nothing the ledger acknowledged was lost: every block replays to its state root.
        let (status, out) = try await PlexusProcess.run(["ledger", "verify", "--data", dir.path + "/up/ledger"], logDirectory: dir.path)
        #expect(status == 0, "\(out)")
    }

    /// A second Ctrl-C does not wait for the graceful stop.
    @Test func aSecondSignalForcesTheStop() async throws {
        let dir = try TemporaryDirectory("plexus-signal")
        defer { dir.remove() }
        let (up, pids) = try await Self.startUp(dir)
        defer { for p in pids where Self.alive(p) { kill(p, SIGKILL) }; up.kill9() }
        kill(up.process.processIdentifier, SIGINT)
        usleep(50_000)
        kill(up.process.processIdentifier, SIGINT)
        let left = Self.waitGone([up.process.processIdentifier] + pids, seconds: 10)
        #expect(left.isEmpty, "still running after two signals: \(left)")
        up.process.waitUntilExit()
        // Forced (exit 130), or stopped gracefully before the second signal came (exit 0), or
        // ended by that signal itself when it came as the graceful stop was exiting.
        let (reason, status) = (up.process.terminationReason, up.process.terminationStatus)
        #expect((reason == .exit && (status == 128 + SIGINT || status == 0)) || (reason == .uncaughtSignal && status == SIGINT),
                "up ended with \(reason == .exit ? "exit status" : "signal") \(status)\n\(up.log.suffix(1_500))")
    }

    /// Killed with SIGKILL, `up` cannot stop its children; they notice and stop themselves.
    @Test func childrenStopWhenUpIsKilled() async throws {
        let dir = try TemporaryDirectory("plexus-signal")
        defer { dir.remove() }
        let (up, pids) = try await Self.startUp(dir)
        defer { for p in pids where Self.alive(p) { kill(p, SIGKILL) } }
        up.kill9()
        let left = Self.waitGone(pids, seconds: 20)
        #expect(left.isEmpty, "children outlived up: \(left)")
    }
}
