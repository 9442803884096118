import Dispatch
import Foundation
import Synchronization

/// SIGINT and SIGTERM for the whole process, and the death of the parent.
///
/// The first signal runs every registered stop handler (servers close their
/// listeners and finish what they acknowledged); a second one runs the force
/// handler, which by default exits at once with status 128 + signal. Sources
/// are installed once and kept for the life of the process: a dispatch source
/// that is released stops delivering, and an optimised build releases a local
/// one right after its last use (the reason a release `plexus up` once ignored
/// Ctrl-C).
public enum StopSignals {
    /// A dispatch source held for the life of the process.
    // Invariant: only created, resumed and cancelled; libdispatch objects are thread-safe.
    private struct Held: @unchecked Sendable {
        let source: any DispatchSourceProtocol
    }

    private struct State {
        var installed = false
        var sources: [Held] = []
        var handlers: [Int: @Sendable () -> Void] = [:]
        var next = 0
        var received = 0
        var force: (@Sendable (Int32) -> Void)?
        var watchdog: Held?
    }

    private static let state = Mutex(State())

    /// Installs the handlers (idempotent).
    public static func install() {
        state.withLock { s in
            guard !s.installed else { return }
            s.installed = true
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { deliver(sig) }
                source.resume()
                s.sources.append(Held(source: source))
            }
        }
    }

    /// Runs `handler` on the first stop signal (at once if one has already come).
    /// Returns a token for `remove`.
    @discardableResult
    public static func onStop(_ handler: @escaping @Sendable () -> Void) -> Int {
        install()
        let (token, already) = state.withLock { s -> (Int, Bool) in
            s.next += 1
            s.handlers[s.next] = handler
            return (s.next, s.received > 0)
        }
        if already { handler() }
        return token
    }

    /// Forgets a stop handler.
    public static func remove(_ token: Int) {
        _ = state.withLock { $0.handlers.removeValue(forKey: token) }
    }

    /// What a second signal does (instead of exiting at once).
    public static func onForce(_ handler: @escaping @Sendable (Int32) -> Void) {
        install()
        state.withLock { $0.force = handler }
    }

    /// How many stop signals have arrived.
    public static var received: Int { state.withLock { $0.received } }

    /// Sends this process SIGTERM (its ordinary, graceful stop) once the parent named by
    /// `PLEXUS_PARENT_PID` is gone: a child of `plexus up` must not outlive it, even when
    /// `up` is killed with SIGKILL (its children run in their own process groups, so nothing
    /// else tells them). Polls `getppid()`: once the parent dies the child is re-parented and
    /// the value changes. A real signal, so that handlers of other libraries see it too.
    public static func followParent(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let text = environment["PLEXUS_PARENT_PID"], let parent = Int32(text), parent > 1 else { return }
        install()
        if getppid() != parent {
            kill(getpid(), SIGTERM)
            return
        }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
        timer.setEventHandler {
            guard getppid() != parent else { return }
            state.withLock { $0.watchdog?.source.cancel(); $0.watchdog = nil }
            kill(getpid(), SIGTERM)
        }
        let held = Held(source: timer)
        state.withLock { $0.watchdog = held }
        timer.resume()
    }

    private static func deliver(_ sig: Int32) {
        let (first, handlers, force) = state.withLock { s -> (Bool, [@Sendable () -> Void], (@Sendable (Int32) -> Void)?) in
            s.received += 1
            return (s.received == 1, s.handlers.keys.sorted().compactMap { s.handlers[$0] }, s.force)
        }
        if first {
            for h in handlers { h() }
        } else if let force {
            force(sig)
        } else {
            // `_exit`, not `exit`: the graceful stop may be tearing down on other threads, and
            // exit's handlers and destructors racing it could crash instead of stopping.
            _exit(128 + sig)
        }
    }
}
