import PlexusCore
@testable import PlexusLedger
import PlexusTestKit
import Testing

@Suite struct StateMachineTests {
    let net = TestNetwork(accounts: 3, params: ConservationPropertyTests.shortParams)
    var a: Address { net.keys[0].address }
    var b: Address { net.keys[1].address }
    let plx = Amount.unitsPerPLX

    func chain() throws -> Chain { try Chain(genesis: net.genesis) }

    @Test func transferMovesFundsAndPaysTheFee() throws {
        var c = try chain()
        let tx = net.tx(0, nonce: 0, .transfer(to: b, amount: Amount(units: 5 * plx)))
        _ = try c.submit(tx, hash: tx.hash, nowMillis: 2_000)
        #expect(c.state.account(a).balance.units == 995 * plx - 1_000)
        #expect(c.state.account(b).balance.units == 1_005 * plx)
        #expect(c.state.treasury.units == 1_000)
        #expect(c.state.account(a).nonce == 1)
    }

    @Test func unstakedFundsReturnAfterUnbondingBlocks() throws {
        var c = try chain()
        let signer = net.orderer
        func send(_ nonce: UInt64, _ body: Transaction.Body) throws {
            let tx = net.tx(0, nonce: nonce, body)
            _ = try c.submit(tx, hash: tx.hash, nowMillis: 2_000)
            _ = try c.seal(signer: signer)
        }
        try send(0, .stake(amount: Amount(units: 100 * plx)))         // block 1
        try send(1, .unstake(amount: Amount(units: 40 * plx)))        // block 2: release at 2 + 6 = 8
        #expect(c.state.account(a).staked.units == 60 * plx)
        #expect(c.state.account(a).unbonding == [PendingRelease(amount: Amount(units: 40 * plx), releaseHeight: 8)])
        let before = c.state.account(a).balance
        for n in 2...6 { try send(UInt64(n), .transfer(to: b, amount: Amount(units: 1))) }  // blocks 3...7
        #expect(c.state.account(a).unbonding.count == 1)
        try send(7, .transfer(to: b, amount: Amount(units: 1)))       // block 8 releases
        #expect(c.state.account(a).unbonding.isEmpty)
        #expect(c.state.account(a).balance.units == before.units + 40 * plx - 6 * 1_001)
        #expect(try c.state.circulatingTotal() == c.state.totalSupply)
    }

    @Test func escrowDepositIsWithdrawnOnlyAfterTheDelay() throws {
        var c = try chain()
        func send(_ i: Int, _ nonce: UInt64, _ body: Transaction.Body) throws {
            let tx = net.tx(i, nonce: nonce, body)
            _ = try c.submit(tx, hash: tx.hash, nowMillis: 2_000)
            _ = try c.seal(signer: net.orderer)
        }
        try send(0, 0, .deposit(requestor: b, amount: Amount(units: 50 * plx)))   // block 1: a pays b's escrow
        #expect(c.state.account(b).escrow.units == 50 * plx)
        // Only b can withdraw b's escrow, and not more than it holds.
        #expect(throws: PlexusError.self) { try send(1, 0, .withdraw(amount: Amount(units: 51 * plx))) }
        try send(1, 0, .withdraw(amount: Amount(units: 20 * plx)))               // block 2: free at 4
        #expect(c.state.account(b).escrow.units == 30 * plx)
        let balance = c.state.account(b).balance
        try send(2, 0, .transfer(to: a, amount: Amount(units: 1)))               // block 3
        #expect(c.state.account(b).balance == balance)
        try send(2, 1, .transfer(to: a, amount: Amount(units: 1)))               // block 4 releases
        #expect(c.state.account(b).balance.units == balance.units + 20 * plx)
    }

    @Test func rejectedTransactionsChangeNothing() throws {
        var c = try chain()
        let ok = net.tx(0, nonce: 0, .transfer(to: b, amount: Amount(units: 1)))
        _ = try c.submit(ok, hash: ok.hash, nowMillis: 2_000)
        let before = c.state.accounts
        let hostile: [(String, Transaction, PlexusError.Code)] = [
            ("replayed nonce", ok, .badNonce),
            ("skipped nonce", net.tx(0, nonce: 5, .transfer(to: b, amount: Amount(units: 1))), .badNonce),
            ("zero transfer", net.tx(0, nonce: 1, .transfer(to: b, amount: .zero)), .zeroAmount),
            ("zero stake", net.tx(0, nonce: 1, .stake(amount: .zero)), .zeroAmount),
            ("overdraft", net.tx(0, nonce: 1, .transfer(to: b, amount: Amount(units: 2_000 * plx))), .insufficientFunds),
            ("max amount", net.tx(0, nonce: 1, .transfer(to: b, amount: .max)), .insufficientFunds),
            ("max fee", net.tx(0, nonce: 1, fee: .max, .transfer(to: b, amount: Amount(units: 1))), .insufficientFunds),
            ("fee below minimum", net.tx(0, nonce: 1, fee: Amount(units: 999), .transfer(to: b, amount: Amount(units: 1))), .feeTooLow),
            ("unstake more than staked", net.tx(0, nonce: 1, .unstake(amount: Amount(units: 1))), .insufficientFunds),
            ("withdraw without escrow", net.tx(0, nonce: 1, .withdraw(amount: Amount(units: 1))), .insufficientFunds),
            ("escrow for the treasury", net.tx(0, nonce: 1, .deposit(requestor: .treasury, amount: Amount(units: 1))), .outOfRange),
            ("wrong chain", Transaction(chainId: "other", from: net.keys[0], nonce: 1, fee: Amount(units: 1_000),
                                        body: .transfer(to: b, amount: Amount(units: 1))), .wrongChain),
        ]
        for (name, tx, code) in hostile {
            do {
                _ = try c.submit(tx, hash: tx.hash, nowMillis: 2_000)
                Issue.record("\(name) was accepted")
            } catch let e as PlexusError {
                #expect(e.code == code, "\(name): \(e)")
            }
            #expect(c.state.accounts == before, "\(name) changed the state")
        }
    }

    @Test func badSignaturesAreDetected() throws {
        var tx = net.tx(0, nonce: 0, .transfer(to: b, amount: Amount(units: 1)))
        #expect(tx.hasValidSignature)
        tx.body = .transfer(to: b, amount: Amount(units: 2))
        #expect(!tx.hasValidSignature)
        #expect(throws: PlexusError.self) { try tx.verifySignature() }
        var forged = net.tx(0, nonce: 0, .transfer(to: b, amount: Amount(units: 1)))
        forged.from = b
        #expect(!forged.hasValidSignature)
    }

    @Test func pendingReleasesAreBounded() throws {
        let n = TestNetwork(accounts: 2, params: ["maxPendingReleases": 2])
        var c = try Chain(genesis: n.genesis)
        let stake = n.tx(0, nonce: 0, .stake(amount: Amount(units: 10 * plx)))
        _ = try c.submit(stake, hash: stake.hash, nowMillis: 2_000)
        for nonce in 1...2 {
            let t = n.tx(0, nonce: UInt64(nonce), .unstake(amount: Amount(units: 1)))
            _ = try c.submit(t, hash: t.hash, nowMillis: 2_000)
        }
        let third = n.tx(0, nonce: 3, .unstake(amount: Amount(units: 1)))
        #expect(throws: PlexusError.self) { try c.submit(third, hash: third.hash, nowMillis: 2_000) }
    }

    @Test func genesisRejectsBadParametersAndDuplicates() throws {
        let k = KeyPair.deterministic("g")
        let bad: [Genesis] = [
            Genesis(chainId: "x", timeMillis: 0, orderer: k.address, params: ["unbondingBlocks": 0], accounts: []),
            Genesis(chainId: "x", timeMillis: 0, orderer: k.address, params: ["noSuchParam": 1], accounts: []),
            Genesis(chainId: "", timeMillis: 0, orderer: k.address, accounts: []),
            Genesis(chainId: "has space", timeMillis: 0, orderer: k.address, accounts: []),
            Genesis(chainId: "x", timeMillis: 0, orderer: k.address,
                    accounts: [.init(address: k.address, balance: .zero), .init(address: k.address, balance: .zero)]),
            Genesis(chainId: "x", timeMillis: 0, orderer: k.address,
                    accounts: [.init(address: k.address, balance: .max, stake: Amount(units: 1))]),
        ]
        for g in bad {
            #expect(throws: PlexusError.self) { try g.initialState() }
        }
        #expect(throws: PlexusError.self) { try Genesis.decode(Array("{\"chainId\": 5}".utf8)) }
    }
}
