import Foundation
@testable import PlexusCore
import PlexusTestKit
import Testing

@Suite struct JournalTests {
    func tempDir() -> String {
        let d = FileManager.default.temporaryDirectory.path + "/plexus-journal-\(UInt64.random(in: 0...UInt64.max))"
        return d
    }

    /// A short stand-in for a payload in comparisons (failure messages stay readable).
    func digest(_ e: Journal.Entry) -> String { digest(e.payload) }
    func digest(_ p: [UInt8]) -> String { Hash256.of(p).hex.prefix(12) + "/\(p.count)" }

    func payload(_ i: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        let n = 1 + Int(rng.next() % 700)
        return [UInt8(i & 0xff), UInt8((i >> 8) & 0xff)] + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// A model of what should be readable: entries of segments not retired, in order.
    @Test func randomAppendsRetiresAndReopensReadBackExactly() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SeededGenerator(seed: 11)
        var (journal, found) = try Journal.open(directory: dir, segmentBytes: 4096)
        #expect(found.isEmpty)
        var model: [(segment: UInt64, payload: [UInt8])] = []
        var counter = 0
        for step in 0..<300 {
            switch rng.next() % 10 {
            case 0..<7:
                let group = (0..<(1 + Int(rng.next() % 6))).map { _ in
                    counter += 1
                    return payload(counter, &rng)
                }
                let segment = try journal.append(group)
                #expect(segment == journal.currentSegment)
                model += group.map { (segment, $0) }
            case 7, 8:
                // Retire the oldest segment that is not the current one.
                if let oldest = model.first?.segment, oldest != journal.currentSegment {
                    journal.retire(oldest)
                    model.removeAll { $0.segment == oldest }
                }
            default:
                let (j, entries) = try Journal.open(directory: dir, segmentBytes: 4096)
                journal = j
                #expect(entries.map(digest) == model.map { digest($0.payload) }, "step \(step)")
                #expect(entries.map(\.segment) == model.map(\.segment), "step \(step)")
            }
            #expect(try Journal.read(directory: dir).map(digest) == model.map { digest($0.payload) }, "step \(step)")
        }
        // Retired files are reused, so the directory stays small.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.count <= Set(model.map(\.segment)).count + 1 + journal.spareLimit, "\(files)")
    }

    @Test func tornDamagedAndForeignBytesStopReadingWithoutLosingEarlierEntries() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SeededGenerator(seed: 12)
        let (journal, _) = try Journal.open(directory: dir, segmentBytes: 1 << 16)
        let group = (0..<5).map { payload($0, &rng) }
        let segment = try journal.append(group)
        let path = dir + "/" + Journal.name(segment)
        let original = try #require(FileManager.default.contents(atPath: path)).map { $0 }
        #expect(Journal.entries(in: original, segment: segment).map(digest) == group.map(digest))
        // Where entry 3 starts.
        let third = group.prefix(3).reduce(0) { $0 + Journal.headerBytes + $1.count }
        // A torn write: the last entry's payload half there.
        var torn = original
        let last = third + Journal.headerBytes + group[3].count
        for i in (last + Journal.headerBytes + group[4].count / 2)..<(last + Journal.headerBytes + group[4].count) { torn[i] = 0 }
        #expect(Journal.entries(in: torn, segment: segment).map(digest) == group.prefix(4).map(digest))
        // A flipped bit in entry 3's payload: entries 0-2 only.
        var flipped = original
        flipped[third + Journal.headerBytes + 1] ^= 0x10
        #expect(Journal.entries(in: flipped, segment: segment).map(digest) == group.prefix(3).map(digest))
        // An absurd length, another segment's number.
        var huge = original
        for i in third..<(third + 4) { huge[i] = 0xff }
        #expect(Journal.entries(in: huge, segment: segment).count == 3)
        #expect(Journal.entries(in: original, segment: segment + 1).isEmpty)
        // Cut short anywhere: never more than the whole entries before the cut.
        for cut in stride(from: 0, to: last + 40, by: 7) {
            let got = Journal.entries(in: Array(original.prefix(cut)), segment: segment)
            #expect(got.map(digest) == group.prefix(got.count).map(digest))
            #expect(got.reduce(0) { $0 + Journal.headerBytes + $1.payload.count } <= cut)
        }
        // Random bytes in a file with a segment's name are no entries.
        try Data((0..<5000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: URL(fileURLWithPath: dir + "/" + Journal.name(999)))
        #expect(try Journal.read(directory: dir).map(digest) == group.map(digest))
        // Too large or empty entries are refused without writing anything.
        #expect(throws: PlexusError.self) { try journal.append([[]]) }
        #expect(try Journal.read(directory: dir).map(digest) == group.map(digest))
    }

    @Test func aReusedFileShowsNothingOfWhatItHeldBefore() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SeededGenerator(seed: 13)
        let (journal, _) = try Journal.open(directory: dir, segmentBytes: 4096)
        // Fill a first segment, move to a second, retire the first (it becomes a spare).
        let first = try journal.append([payload(0, &rng)])
        while journal.currentSegment == first { _ = try journal.append([payload(1, &rng)]) }
        let second = journal.currentSegment
        journal.retire(first)
        // Rolling over again takes the spare: it must read as holding only what is new.
        var fresh: [[UInt8]] = []
        while journal.currentSegment == second { fresh = [payload(2, &rng)]; _ = try journal.append(fresh) }
        for i in 3..<6 {
            fresh.append(payload(i, &rng))
            _ = try journal.append([fresh.last!])
        }
        let third = journal.currentSegment
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("spare-") }.isEmpty)
        #expect(try Journal.read(directory: dir).filter { $0.segment == third }.map(digest) == fresh.map(digest))
        #expect(try Journal.read(directory: dir).allSatisfy { $0.segment == second || $0.segment == third })
        #expect(!FileManager.default.fileExists(atPath: dir + "/" + Journal.name(first)))
    }
}
