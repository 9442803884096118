import PlexusCore
import Testing
@testable import PlexusGateway

/// A gateway's `/health`: a ledger it cannot read, no node to route to, every node failing,
/// settlement that keeps failing; each said with why.
@Suite struct GatewayHealthTests {
    static func facts(now: UInt64 = 100_000) -> GatewayHealth.Facts {
        GatewayHealth.Facts(now: now, registryMillis: now - 1_000, registryError: nil, nodes: 3, nodesOut: 0,
                            settlementFailing: nil, staleAfterMillis: 15_000)
    }

    @Test func eachProblemIsNamedWithItsCause() {
        #expect(GatewayHealth.problems(Self.facts()).isEmpty)
        var f = Self.facts()
        f.registryMillis = f.now - 20_000
        f.registryError = "cannot reach the ledger at http://127.0.0.1:1 (connection refused)"
        let ledger = GatewayHealth.problems(f)
        #expect(ledger.map(\.component) == ["ledger"] && ledger[0].reason.contains("20 s") && ledger[0].reason.contains("connection refused"))
        f = Self.facts()
        f.nodes = 0
        #expect(GatewayHealth.problems(f).map(\.component) == ["nodes"])
        f.nodes = 3
        f.nodesOut = 2
        #expect(GatewayHealth.problems(f).isEmpty)
        f.nodesOut = 3
        #expect(GatewayHealth.problems(f).first?.reason.contains("every node (3)") == true)
        f = Self.facts()
        // A round that failed a moment ago is not yet a problem; one failing for 16 s is.
        f.settlementFailing = (f.now - 2_000, "ledger busy")
        #expect(GatewayHealth.problems(f).isEmpty)
        f.settlementFailing = (f.now - 16_000, "ledger busy")
        let settling = GatewayHealth.problems(f)
        #expect(settling.map(\.component) == ["settlement"] && settling[0].reason.contains("16 s: ledger busy"))
    }
}
