import Testing

/// The whole-network tests of this session's features (health, agents, the spot price, evaluations,
/// the data market): each starts a `plexus up` of its own, so they run one at a time, beside the
/// other suites rather than all at once on a 2-core machine.
@Suite(.serialized) struct MarketNetworkTests {}
