import Foundation

/// A line chart as SVG, drawn on the server so that it reads without JavaScript: points in,
/// markup out (every text escaped).
public enum SVGChart {
    /// `points` (x ascending) scaled into `width` × `height`, with the y range's top and a title.
    /// `xLabels`: what the left and right ends of the x axis read (times), if anything.
    public static func line(_ points: [(x: Double, y: Double)], title: String, unit: String, width: Int = 640, height: Int = 160,
                            xLabels: (String, String)? = nil) -> String {
        let pad = 28.0, w = Double(width), h = Double(height)
        let xs = points.map(\.x), ys = points.map(\.y)
        let x0 = xs.min() ?? 0, x1 = xs.max() ?? 1
        let highest = ys.max() ?? 0, top = max(highest, 1e-9)
        func px(_ x: Double) -> Double { x1 == x0 ? w / 2 : pad + (x - x0) / (x1 - x0) * (w - 2 * pad) }
        func py(_ y: Double) -> Double { h - pad - y / top * (h - 2 * pad) }
        let path = points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
        let label = HTML.escape(title)
        return """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(width) \(height)" role="img" aria-label="\(label)" class="chart">\
        <title>\(label)</title>\
        <line x1="\(pad)" y1="\(h - pad)" x2="\(w - pad)" y2="\(h - pad)" stroke="#888"/>\
        <line x1="\(pad)" y1="\(pad)" x2="\(pad)" y2="\(h - pad)" stroke="#888"/>\
        <text x="\(pad + 4)" y="\(pad - 8)" font-size="12">\(HTML.escape(format(highest))) \(HTML.escape(unit))</text>\
        <text x="\(pad + 4)" y="\(h - 8)" font-size="12">0\(xLabels.map { " · " + HTML.escape($0.0) } ?? "")</text>\
        \(xLabels.map { "<text x=\"\(w - pad)\" y=\"\(h - 8)\" font-size=\"12\" text-anchor=\"end\">\(HTML.escape($0.1))</text>" } ?? "")\
        \(points.isEmpty ? "<text x=\"\(w / 2)\" y=\"\(h / 2)\" font-size=\"12\" text-anchor=\"middle\">no data yet</text>" : "<polyline fill=\"none\" stroke=\"#1a5fb4\" stroke-width=\"2\" points=\"\(path)\"/>")\
        \(points.count == 1 ? String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#1a5fb4\"/>", px(points[0].x), py(points[0].y)) : "")\
        </svg>
        """
    }

    static func format(_ v: Double) -> String {
        v >= 100 || v == v.rounded() ? String(format: "%.0f", v) : v >= 1 ? String(format: "%.1f", v) : String(format: "%.3g", v)
    }
}

/// HTML text escaping (what mustache's `{{…}}` does, for the little markup built in Swift).
public enum HTML {
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
