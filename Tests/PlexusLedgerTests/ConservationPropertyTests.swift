import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

/// Random sequences of valid and invalid transactions, seeded: supply is
/// conserved after every step, and a rejected transaction changes nothing.
@Suite struct ConservationPropertyTests {
    static let accounts = 12
    /// Short delays so that releases happen within a run (within the parameters' bounds).
    static let shortParams: [String: UInt64] = ["unbondingBlocks": 6, "escrowWithdrawDelayBlocks": 2, "challengeWindowBlocks": 2,
                                                 "verdictDeadlineBlocks": 1, "disputeCommitBlocks": 1, "disputeRevealBlocks": 1]

    /// A random transaction, often invalid on purpose.
    static func randomTransaction(_ net: TestNetwork, _ state: LedgerState, _ rng: inout SeededGenerator) -> Transaction {
        let i = Int(rng.next() % UInt64(accounts))
        let key = net.keys[i]
        let acct = state.account(key.address)
        var nonce = acct.nonce
        switch rng.next() % 20 {
        case 0: nonce &+= 1 + rng.next() % 3     // skipped
        case 1: if nonce > 0 { nonce -= 1 }        // replayed
        default: break
        }
        let other = net.keys[Int(rng.next() % UInt64(accounts))].address
        func amount() -> Amount {
            switch rng.next() % 10 {
            case 0: return .zero
            case 1: return .max
            case 2: return Amount(units: acct.balance.units &+ 1)
            case 3: return Amount(units: rng.next())
            default: return Amount(units: rng.next() % max(1, acct.balance.units / 4 + 1))
            }
        }
        var fee = Amount(units: 1_000 + rng.next() % 100)
        if rng.next() % 25 == 0 { fee = Amount(units: rng.next() % 1_000) }
        if rng.next() % 50 == 0 { fee = .max }
        let body: Transaction.Body
        switch rng.next() % 5 {
        case 0: body = .transfer(to: rng.next() % 10 == 0 ? .treasury : other, amount: amount())
        case 1: body = .stake(amount: amount())
        case 2: body = .unstake(amount: rng.next() % 2 == 0 ? amount() : Amount(units: acct.staked.units / 2))
        case 3: body = .deposit(requestor: other, amount: amount())
        default: body = .withdraw(amount: rng.next() % 2 == 0 ? amount() : Amount(units: acct.escrow.units / 2))
        }
        let chain = rng.next() % 40 == 0 ? "other-chain" : net.genesis.chainId
        var tx = Transaction(chainId: chain, from: key, nonce: nonce, fee: fee, body: body)
        if rng.next() % 30 == 0 {
            tx.nonce &+= 0 // keep nonce, but corrupt the signature
            var sig = tx.signature.bytes
            sig[Int(rng.next() % 64)] ^= 0x40
            tx.signature = (try? Signature(bytes: sig)) ?? tx.signature
        }
        return tx
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomSequencesConserveSupply(seed: UInt64) throws {
        let net = TestNetwork(accounts: Self.accounts, params: Self.shortParams)
        var chain = try Chain(genesis: net.genesis)
        var rng = SeededGenerator(seed: seed)
        var blocks: [Block] = []
        var accepted = 0, rejected = 0
        var now: UInt64 = 2_000
        for _ in 0..<3_000 {
            let tx = Self.randomTransaction(net, chain.state, &rng)
            let before = chain.state.accounts
            let beforeHeight = chain.state.height
            let releasesDue = !chain.hasOpenBlock && chain.state.releases[chain.state.height + 1] != nil
            do {
                guard tx.hasValidSignature else { throw PlexusError(.badSignature, "bad signature") }
                _ = try chain.submit(tx, hash: tx.hash, nowMillis: now)
                accepted += 1
            } catch is PlexusError {
                rejected += 1
                if !releasesDue {
                    // Nothing was due at a new block's start: nothing may have changed.
                    #expect(chain.state.accounts == before)
                    #expect(chain.state.height == beforeHeight)
                }
            }
            #expect(try chain.state.circulatingTotal() == chain.state.totalSupply)
            if rng.next() % 8 == 0, let commit = try chain.seal(signer: net.orderer) {
                blocks.append(commit.block)
                now += 1 + rng.next() % 50
            }
        }
        if let commit = try chain.seal(signer: net.orderer) { blocks.append(commit.block) }
        #expect(accepted > 500)
        #expect(rejected > 500)

        // A replica replaying the blocks reaches the same state and root.
        var replica = try Chain(genesis: net.genesis)
        for b in blocks { _ = try replica.apply(block: b) }
        #expect(replica.state.accounts == chain.state.accounts)
        #expect(replica.stateRoot() == chain.stateRoot())
        #expect(replica.tipHash == chain.tipHash)
    }
}
