import PlexusCore
import PlexusLedger

/// Recording: a served request's record made durable before its answer, while the
/// node's signature on its last receipt is checked; a receipt that fails is withdrawn
/// (a discard mark) before anything is answered.
struct Recorder: Sendable {
    let store: ReceiptStore
    let chainId: String
    /// Node receipts arriving together are verified together.
    let signatures = SignatureBatcher(later: SignatureBatcher.onEventLoop)

    init(store: ReceiptStore, chainId: String) {
        self.store = store
        self.chainId = chainId
    }

    /// Writes `record` durably; true when the node's signature on its last receipt holds
    /// (otherwise the record is withdrawn). `alone`: no other request is in the server,
    /// so the record is written and synced on this thread (no hand-over to the journal's
    /// writer and back) while another thread checks the signature.
    func record(_ record: RequestRecord, alone: Bool) async throws -> Bool {
        guard let r = record.receipts.last else { return false }
        let signing = r.nodeSigningBytes(chainId: chainId)
        let valid: Bool, saving: ReceiptStore.SaveTicket
        if alone {
            let signatures = self.signatures
            let check = Background { signatures.verifyNow(r.nodeSignature, by: r.node, over: signing) }
            saving = try store.beginSave(record, inline: true)
            valid = check.wait()
        } else {
            saving = try store.beginSave(record)
            valid = await signatures.verify(r.nodeSignature, by: r.node, over: signing)
        }
        try await saving.wait()
        if !valid { store.discard(record.requestId) }
        return valid
    }
}
