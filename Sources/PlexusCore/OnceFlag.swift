import Synchronization

/// A flag any thread may set once and any thread may read (cancellation, stop requests).
public final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
