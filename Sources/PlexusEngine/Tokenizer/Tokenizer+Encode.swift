import PlexusCore

extension Tokenizer {
    /// Token ids for `text`. With `parseSpecial`, the texts of special tokens
    /// (such as `<|im_start|>`) become those tokens; otherwise only
    /// user-defined tokens are matched and control tokens are plain text.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) throws -> [TokenID] {
        let bytes = Array(text.utf8)
        guard bytes.count <= Self.maxInputBytes else {
            throw PlexusError(.tooLarge, "input of \(bytes.count) bytes exceeds the tokenizer limit of \(Self.maxInputBytes)")
        }
        var out: [TokenID] = []
        if addBOS ?? self.addBOS, let bos { out.append(bos) }
        for fragment in partition(bytes, parseSpecial: parseSpecial) {
            switch fragment {
            case .special(let id): out.append(id)
            case .text(let range): encodePlain(bytes[range], into: &out)
            }
        }
        return out
    }

    enum Fragment {
        case text(Range<Int>)
        case special(TokenID)
    }

    /// Splits the text around special-token occurrences, longest special first.
    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = [.text(0..<bytes.count)]
        for special in specials {
            if !parseSpecial && special.type != 4 { continue }
            var next: [Fragment] = []
            for f in fragments {
                guard case .text(let range) = f else { next.append(f); continue }
                var start = range.lowerBound
                var i = range.lowerBound
                let n = special.text.count
                while i + n <= range.upperBound {
                    if bytes[i] == special.text[0] && bytes[i..<i + n].elementsEqual(special.text) {
                        if start < i { next.append(.text(start..<i)) }
                        next.append(.special(special.id))
                        i += n
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < range.upperBound { next.append(.text(start..<range.upperBound)) }
            }
            fragments = next
        }
        return fragments
    }

    /// BPE over the pre-tokenized words of plain text.
    func encodePlain(_ bytes: ArraySlice<UInt8>, into out: inout [TokenID]) {
        // Invalid UTF-8 is replaced the way String does, as the reference does.
        let text = String(decoding: bytes, as: UTF8.self)
        let scalars = Array(text.unicodeScalars)
        for word in pre.split(scalars) {
            var utf8: [UInt8] = []
            for s in scalars[word] { utf8.append(contentsOf: String(s).utf8) }
            encodeWord(ByteLevel.encode(utf8), into: &out)
        }
    }

    /// Merges one byte-level word by rank (lowest first, leftmost on ties).
    func encodeWord(_ word: String, into out: inout [TokenID]) {
        var symbols = word.unicodeScalars.map { String($0) }
        if symbols.count > 1 {
            var prev = Array(-1..<(symbols.count - 1))
            var next = Array(1...symbols.count)
            next[symbols.count - 1] = -1
            var alive = [Bool](repeating: true, count: symbols.count)
            var heap = BigramHeap()
            func push(_ l: Int, _ r: Int) {
                guard l >= 0, r >= 0, let rank = ranks[symbols[l] + " " + symbols[r]] else { return }
                heap.push(.init(rank: rank, left: l, right: r, text: symbols[l] + symbols[r]))
            }
            for i in 1..<symbols.count { push(i - 1, i) }
            while let b = heap.pop() {
                guard alive[b.left], alive[b.right], next[b.left] == b.right,
                      symbols[b.left] + symbols[b.right] == b.text else { continue }
                symbols[b.left] = b.text
                alive[b.right] = false
                next[b.left] = next[b.right]
                if next[b.right] >= 0 { prev[next[b.right]] = b.left }
                push(prev[b.left], b.left)
                push(b.left, next[b.left])
            }
            var merged: [String] = []
            var i = 0
            while i >= 0 && i < symbols.count {
                merged.append(symbols[i])
                i = next[i]
            }
            symbols = merged
        }
        for s in symbols {
            if let id = ids[s] {
                out.append(id)
            } else {
                // Not in the vocabulary: fall back to one token per byte character.
                for c in s.unicodeScalars {
                    if let id = ids[String(c)] { out.append(id) }
                }
            }
        }
    }
}

/// A binary min-heap of candidate merges ordered by (rank, left position).
struct BigramHeap {
    struct Bigram {
        var rank: Int
        var left: Int
        var right: Int
        var text: String

        func precedes(_ o: Bigram) -> Bool { rank != o.rank ? rank < o.rank : left < o.left }
    }

    private var items: [Bigram] = []

    mutating func push(_ b: Bigram) {
        items.append(b)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i].precedes(items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Bigram? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && items[l].precedes(items[m]) { m = l }
            if r < items.count && items[r].precedes(items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
