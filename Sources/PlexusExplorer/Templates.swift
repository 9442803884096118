/// The explorer's pages as mustache templates (swift-mustache: `{{x}}` is escaped HTML,
/// `{{{x}}}` is markup the explorer built itself — a page body, a chart).
enum Templates {
    static let all: [String: String] = [
        "layout": layout, "overview": overview, "blocks": blocks, "block": block, "transaction": transaction,
        "account": account, "nodes": nodes, "node": node, "request": request, "governance": governance, "proposal": proposal,
        "markets": markets, "search": search, "error": error, "chart": chart,
    ]

    static let layout = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · Plexus explorer</title>
    <style>
    body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fff;line-height:1.4}
    header{background:#0b3d6e;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.75rem;align-items:center}
    header a{color:#fff}
    nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.75rem}
    main{padding:1rem;max-width:72rem;margin:auto}
    .scroll{overflow-x:auto}
    table{border-collapse:collapse;width:100%}
    th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ccc;vertical-align:top}
    .mono{font-family:ui-monospace,monospace;word-break:break-all}
    .stale,.bad{color:#a01010;font-weight:bold}
    .good{color:#0b6e2c}
    ul.inline{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
    .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.5rem}
    .card{border:1px solid #ccc;border-radius:.3rem;padding:.5rem}
    .card dt{font-size:.85rem;color:#333}.card dd{margin:0;font-size:1.3rem}
    .chart{width:100%;max-width:40rem;height:auto}
    form.search{display:flex;gap:.25rem}
    </style>
    </head>
    <body>
    <header>
    <a href="/"><strong>Plexus explorer</strong></a>
    <nav aria-label="Sections"><ul>
    <li><a href="/">Overview</a></li><li><a href="/blocks">Blocks</a></li><li><a href="/nodes">Nodes</a></li>
    <li><a href="/governance">Governance</a></li><li><a href="/markets">Markets</a></li>
    </ul></nav>
    <form class="search" action="/search" method="get" role="search">
    <label for="q">Search</label>
    <input id="q" name="q" type="search" placeholder="height, hash, address, request or proposal id" value="{{query}}" size="32">
    <button type="submit">Go</button>
    </form>
    </header>
    <main>
    {{{body}}}
    </main>
    </body>
    </html>
    """

    static let overview = """
    <h1>Network overview</h1>
    <p>Chain <span class="mono">{{chain}}</span>, ledger <span class="mono">{{ledger}}</span>.</p>
    <dl class="cards" id="live">
    {{#cards}}<div class="card"><dt><a href="/charts/{{id}}">{{label}}</a></dt><dd id="{{id}}">{{value}}</dd>{{#change}}<dd><small>{{change}}</small></dd>{{/change}}</div>
    {{/cards}}
    </dl>
    <h2>Requests per minute</h2>
    {{{requestsChart}}}
    <h2>Tokens per minute</h2>
    {{{tokensChart}}}
    <h2>Latest blocks</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Height</th><th scope="col">Time (UTC)</th><th scope="col">Transactions</th><th scope="col">Requests settled</th></tr></thead>
    <tbody>{{#latest}}<tr><td><a href="/blocks/{{height}}">{{height}}</a></td><td>{{time}}</td><td>{{transactions}}</td><td>{{requests}}</td></tr>{{/latest}}</tbody>
    </table></div>
    <script>
    // Live figures: the explorer's server-sent events replace the cards' values, without a reload.
    const es = new EventSource('/live');
    es.onmessage = (m) => { const d = JSON.parse(m.data); for (const k in d) { const el = document.getElementById(k); if (el) el.textContent = d[k]; } };
    </script>
    """

    static let chart = """
    <h1>{{label}}</h1>
    <p>Now: <strong>{{value}}</strong>; {{change}}.</p>
    <nav aria-label="Range"><ul class="inline">{{#ranges}}<li>{{#current}}<strong>{{label}}</strong>{{/current}}{{^current}}<a href="/charts/{{id}}?range={{name}}">{{label}}</a>{{/current}}</li>{{/ranges}}</ul></nav>
    {{{chart}}}
    <p>{{samples}} kept since {{since}} (the explorer samples each figure once a period and keeps a week, across restarts).</p>
    <p><a href="/">Back to the overview</a></p>
    """

    static let blocks = """
    <h1>Blocks</h1>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Height</th><th scope="col">Hash</th><th scope="col">Time (UTC)</th><th scope="col">Transactions</th></tr></thead>
    <tbody>{{#blocks}}<tr><td><a href="/blocks/{{height}}">{{height}}</a></td><td class="mono">{{hash}}</td><td>{{time}}</td><td>{{transactions}}</td></tr>{{/blocks}}</tbody>
    </table></div>
    {{#older}}<p><a href="/blocks?before={{older}}">Older blocks</a></p>{{/older}}
    """

    static let block = """
    <h1>Block {{height}}</h1>
    <dl>
    <dt>Hash</dt><dd class="mono">{{hash}}</dd>
    <dt>Previous</dt><dd class="mono">{{#previous}}<a href="/blocks/{{previous}}">{{previousHash}}</a>{{/previous}}{{^previous}}genesis{{/previous}}</dd>
    <dt>Time (UTC)</dt><dd>{{time}}</dd>
    <dt>Orderer</dt><dd class="mono"><a href="/accounts/{{orderer}}">{{orderer}}</a></dd>
    <dt>State root</dt><dd class="mono">{{stateRoot}}</dd>
    </dl>
    <h2>Transactions ({{count}})</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">#</th><th scope="col">Hash</th><th scope="col">Kind</th><th scope="col">From</th></tr></thead>
    <tbody>{{#transactions}}<tr><td>{{index}}</td><td class="mono"><a href="/tx/{{hash}}">{{short}}</a></td><td>{{kind}}</td><td class="mono"><a href="/accounts/{{from}}">{{fromShort}}</a></td></tr>{{/transactions}}</tbody>
    </table></div>
    <p>{{#earlier}}<a href="/blocks/{{height}}?page={{page}}">Earlier transactions</a> {{/earlier}}{{#later}}<a href="/blocks/{{height}}?page={{page}}">Later transactions</a>{{/later}}</p>
    """

    static let transaction = """
    <h1>Transaction</h1>
    <dl>
    <dt>Hash</dt><dd class="mono">{{hash}}</dd>
    <dt>Block</dt><dd><a href="/blocks/{{height}}">{{height}}</a>, position {{index}}</dd>
    <dt>Kind</dt><dd>{{kind}}</dd>
    <dt>From</dt><dd class="mono"><a href="/accounts/{{from}}">{{from}}</a></dd>
    <dt>Nonce</dt><dd>{{nonce}}</dd>
    <dt>Fee</dt><dd>{{fee}}</dd>
    </dl>
    {{#hasRequests}}<h2>Requests settled</h2><ul>{{#requests}}<li class="mono"><a href="/requests/{{.}}">{{.}}</a></li>{{/requests}}</ul>{{/hasRequests}}
    <h2>Body</h2>
    <pre class="mono scroll">{{body}}</pre>
    """

    static let account = """
    <h1>Account</h1>
    <p class="mono">{{address}}</p>
    <dl class="cards">
    <div class="card"><dt>Balance</dt><dd>{{balance}}</dd></div>
    <div class="card"><dt>Staked</dt><dd>{{staked}}</dd></div>
    <div class="card"><dt>Escrow</dt><dd>{{escrow}}</dd></div>
    <div class="card"><dt>Unbonding</dt><dd>{{unbonding}}</dd></div>
    <div class="card"><dt>Nonce</dt><dd>{{nonce}}</dd></div>
    {{#reputation}}<div class="card"><dt>Reputation</dt><dd>{{reputation}}</dd></div>{{/reputation}}
    {{#votingPower}}<div class="card"><dt>Voting power</dt><dd>{{votingPower}}</dd></div>{{/votingPower}}
    </dl>
    {{#delegate}}<p>Delegates its votes to <a class="mono" href="/accounts/{{delegate}}">{{delegate}}</a>.</p>{{/delegate}}
    {{#node}}<p>Operates node <span class="mono">{{node}}</span> (<a href="/nodes">nodes</a>).</p>{{/node}}
    <h2>Activity</h2>
    <p><a href="/accounts/{{address}}.csv" download>Download as CSV</a> ({{activityCount}} recent transactions)</p>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Block</th><th scope="col">Time (UTC)</th><th scope="col">Kind</th><th scope="col">From</th><th scope="col">Other</th><th scope="col">Amount</th><th scope="col">Transaction</th></tr></thead>
    <tbody>{{#activity}}<tr><td><a href="/blocks/{{height}}">{{height}}</a></td><td>{{time}}</td><td>{{kind}}</td><td class="mono">{{fromShort}}</td><td class="mono">{{counterpartyShort}}</td><td>{{amount}}</td><td class="mono"><a href="/tx/{{hash}}">{{short}}</a></td></tr>{{/activity}}</tbody>
    </table></div>
    """

    static let nodes = """
    <h1>Nodes ({{count}})</h1>
    <p>Sort by: {{#sorts}}<a href="/nodes?sort={{key}}">{{label}}</a> {{/sorts}}</p>
    <p>Nodes {{first}}–{{last}} of {{count}}.{{#earlier}} <a href="/nodes?sort={{sort}}&amp;page={{page}}">Previous {{size}}</a>{{/earlier}}{{#later}} <a href="/nodes?sort={{sort}}&amp;page={{page}}">Next {{size}}</a>{{/later}}</p>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Node</th><th scope="col">Operator</th><th scope="col">Offers</th><th scope="col">Stake</th><th scope="col">Reputation</th><th scope="col">Requests served</th><th scope="col">Tokens served</th><th scope="col">Checks passed / frauds</th><th scope="col">Uptime 1d</th><th scope="col">First token p50 (ms)</th><th scope="col">Throughput p50 (tok/s)</th><th scope="col">State</th></tr></thead>
    <tbody>{{#nodes}}<tr><td class="mono"><a href="/nodes/{{key}}">{{keyShort}}</a></td><td class="mono"><a href="/accounts/{{owner}}">{{ownerShort}}</a></td><td>{{#offers}}{{model}}{{#layers}} layers {{layers}}{{/layers}} at {{priceIn}}/{{priceOut}} per M, {{quantization}}, ctx {{context}}<br>{{/offers}}</td><td>{{stake}}</td><td>{{reputation}}</td><td>{{served}}</td><td>{{tokens}}</td><td>{{verified}}</td><td>{{uptime}}</td><td>{{ttft}}</td><td>{{throughput}}</td><td>{{#jailed}}<span class="bad">jailed</span>{{/jailed}}{{^jailed}}{{#stale}}<span class="stale">stale: {{stale}}</span>{{/stale}}{{^stale}}<span class="good">active</span>{{/stale}}{{/jailed}}</td></tr>{{/nodes}}</tbody>
    </table></div>
    """

    static let node = """
    <h1>Node</h1>
    <p class="mono">{{key}}</p>
    <dl>
    <dt>Operator</dt><dd class="mono"><a href="/accounts/{{owner}}">{{owner}}</a></dd>
    <dt>Endpoint</dt><dd class="mono">{{endpoint}}</dd>
    <dt>Registered at block</dt><dd><a href="/blocks/{{registered}}">{{registered}}</a></dd>
    <dt>State</dt><dd>{{#jailed}}<span class="bad">jailed</span>{{/jailed}}{{^jailed}}<span class="good">active</span>{{/jailed}}</dd>
    </dl>
    <dl class="cards">
    <div class="card"><dt>Operator's stake</dt><dd>{{stake}}</dd></div>
    <div class="card"><dt>Reputation</dt><dd>{{reputation}}</dd></div>
    <div class="card"><dt>Requests served</dt><dd>{{served}}</dd></div>
    <div class="card"><dt>Tokens served</dt><dd>{{tokens}}</dd></div>
    <div class="card"><dt>Checks passed / frauds</dt><dd>{{passes}} / {{frauds}}</dd></div>
    </dl>
    <h2>Offers</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Model</th><th scope="col">Layers</th><th scope="col">Price in / out (per M tokens)</th><th scope="col">Slots</th><th scope="col">Context</th><th scope="col">Region</th></tr></thead>
    <tbody>{{#offers}}<tr><td>{{model}}</td><td>{{layers}}{{^layers}}all{{/layers}}</td><td>{{priceIn}} / {{priceOut}}</td><td>{{concurrency}}</td><td>{{context}}</td><td>{{region}}</td></tr>{{/offers}}</tbody>
    </table></div>
    <h2>Measured service</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Model</th><th scope="col">Window</th><th scope="col">Uptime</th><th scope="col">Attempts</th><th scope="col">First token p50 / p90 / p99 (ms)</th><th scope="col">Throughput p50 / p90 / p99 (tok/s)</th><th scope="col">Reports</th></tr></thead>
    <tbody>{{#service}}<tr><td>{{model}}</td><td>{{window}}</td><td>{{uptime}}</td><td>{{attempts}}</td><td>{{ttft}}</td><td>{{throughput}}</td><td>{{reports}}</td></tr>{{/service}}</tbody>
    </table></div>
    {{^service}}<p>Not measured yet.</p>{{/service}}
    <h2>Output tokens paid per minute</h2>
    {{{chart}}}
    <h2>History</h2>
    <nav aria-label="Range"><ul class="inline">{{#ranges}}<li>{{#current}}<strong>{{label}}</strong>{{/current}}{{^current}}<a href="/nodes/{{key}}?range={{name}}">{{label}}</a>{{/current}}</li>{{/ranges}}</ul></nav>
    {{#history}}<h3>{{title}}</h3>{{{svg}}}{{/history}}
    <h2>Recent paid shares</h2>
    <p><a href="/nodes/{{key}}.csv" download>Download as CSV</a></p>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Block</th><th scope="col">Time (UTC)</th><th scope="col">Request</th><th scope="col">Input tokens</th><th scope="col">Output tokens</th><th scope="col">At its ask</th></tr></thead>
    <tbody>{{#shares}}<tr><td><a href="/blocks/{{height}}">{{height}}</a></td><td>{{time}}</td><td class="mono"><a href="/requests/{{id}}">{{short}}</a></td><td>{{input}}</td><td>{{output}}</td><td>{{cost}}</td></tr>{{/shares}}</tbody>
    </table></div>
    <h2>Disputes</h2>
    <ul>{{#disputes}}<li class="mono"><a href="/requests/{{id}}">{{short}}</a>: {{outcome}}, {{slashed}} slashed</li>{{/disputes}}</ul>
    {{^disputes}}<p>None.</p>{{/disputes}}
    """

    static let request = """
    <h1>Request</h1>
    <p class="mono">{{id}}</p>
    <dl>
    <dt>Model</dt><dd>{{model}}</dd>
    <dt>Requestor</dt><dd class="mono"><a href="/accounts/{{requestor}}">{{requestor}}</a></dd>
    <dt>Gateway</dt><dd class="mono">{{gateway}}</dd>
    <dt>Status</dt><dd>{{status}}</dd>
    </dl>
    <h2>Path</h2>
    {{#failover}}<p>The answer failed over: {{count}} attempts, each going on from the tokens already sent.</p>{{/failover}}
    <div class="scroll"><table>
    <thead><tr><th scope="col">Order</th><th scope="col">Node</th><th scope="col">Output tokens</th><th scope="col">Share</th><th scope="col">Paid</th><th scope="col">Why it ended</th></tr></thead>
    <tbody>{{#path}}<tr><td>{{order}}</td><td class="mono"><a href="/nodes/{{node}}">{{node}}</a></td><td>{{tokens}}</td><td>{{share}}</td><td>{{paid}}</td><td>{{why}}</td></tr>{{/path}}</tbody>
    </table></div>
    <h2>Price</h2>
    <dl>
    <dt>Charged from escrow</dt><dd>{{charge}}</dd>
    <dt>Protocol fee (treasury)</dt><dd>{{fee}}</dd>
    {{#premium}}<dt>Spot premium locked at admission</dt><dd>{{premium}} (quote height {{quoteHeight}})</dd>{{/premium}}
    </dl>
    {{#receipts}}<h3>Receipts</h3>
    <p>Each paid share's receipt, signed by its node and countersigned by the gateway: the tokens it counts, the node's ask per million input / output tokens, and what the share costs at that ask (the charge adds the spot premium; the protocol fee and any royalty come out of it).</p>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Node</th><th scope="col">Input tokens</th><th scope="col">Output tokens</th><th scope="col">Ask in / out</th><th scope="col">At the ask</th><th scope="col">Node signature</th><th scope="col">Gateway signature</th><th scope="col">Signatures</th></tr></thead>
    <tbody>{{#rows}}<tr><td class="mono"><a href="/nodes/{{node}}">{{nodeShort}}</a></td><td>{{input}}</td><td>{{output}}</td><td>{{ask}}</td><td>{{cost}}</td><td class="mono">{{nodeSignature}}…</td><td class="mono">{{gatewaySignature}}…</td><td>{{valid}}</td></tr>{{/rows}}</tbody>
    </table></div>{{/receipts}}
    <div class="scroll"><table>
    <thead><tr><th scope="col">Paid to</th><th scope="col">Amount</th></tr></thead>
    <tbody>{{#payouts}}<tr><td class="mono"><a href="/accounts/{{to}}">{{to}}</a></td><td>{{amount}}</td></tr>{{/payouts}}</tbody>
    </table></div>
    <h2>Verification</h2>
    <p>{{verification}}</p>
    <h2>Settlement</h2>
    <p>Settled at block <a href="/blocks/{{settledHeight}}">{{settledHeight}}</a>{{#tx}} by transaction <a class="mono" href="/tx/{{tx}}">{{txShort}}</a>{{/tx}}; final at block {{finalHeight}}.</p>
    <h2>Parameters in force at block {{settledHeight}}</h2>
    <div class="scroll"><table><thead><tr><th scope="col">Parameter</th><th scope="col">Value</th><th scope="col">Changed since by governance</th></tr></thead>
    <tbody>{{#params}}<tr><td>{{name}}</td><td>{{value}}</td><td>{{since}}</td></tr>{{/params}}</tbody></table></div>
    """

    static let governance = """
    <h1>Governance</h1>
    <h2>Proposals</h2>
    {{#hasProposals}}<div class="scroll"><table>
    <thead><tr><th scope="col">Proposal</th><th scope="col">Title</th><th scope="col">State</th><th scope="col">Communities</th></tr></thead>
    <tbody>{{#proposals}}<tr><td class="mono"><a href="/governance/{{id}}">{{short}}</a></td><td>{{title}}</td><td>{{state}}</td><td>{{communities}}</td></tr>{{/proposals}}</tbody>
    </table></div>{{/hasProposals}}
    {{^hasProposals}}<p>No proposals yet.</p>{{/hasProposals}}
    <h2>Communities</h2>
    <ul>{{#communities}}<li>{{id}}: {{members}} members, {{scheme}}</li>{{/communities}}</ul>
    <h2>Federation assembly</h2>
    {{#assembly}}<p>Seats by community: {{#seats}}{{community}} {{seats}}; {{/seats}} drawn by sortition, seated since block {{since}}, the term ends at block {{termEnd}}. {{pendingDraw}}</p>
    <ul>{{#members}}<li class="mono"><a href="/accounts/{{.}}">{{.}}</a></li>{{/members}}</ul>
    <h3>Sortition draws</h3>
    <div class="scroll"><table><thead><tr><th scope="col">Seated from block</th><th scope="col">Representatives</th><th scope="col">Drawn</th></tr></thead>
    <tbody>{{#draws}}<tr><td><a href="/blocks/{{from}}">{{from}}</a></td><td>{{count}}</td><td class="mono">{{#members}}<a href="/accounts/{{address}}">{{short}}</a> {{/members}}</td></tr>{{/draws}}</tbody></table></div>{{/assembly}}
    {{^assembly}}<p>No federation: no community has joined the assembly.</p>{{/assembly}}
    """

    static let proposal = """
    <h1>{{title}}</h1>
    <p class="mono">{{id}}</p>
    <p>{{description}}</p>
    <dl>
    <dt>State</dt><dd>{{state}}</dd>
    <dt>Proposer</dt><dd class="mono"><a href="/accounts/{{proposer}}">{{proposer}}</a></dd>
    <dt>Timeline</dt><dd>created at block {{created}}; power counted at block {{snapshot}}; voting until block {{deadline}}{{#extended}} (extended: quorum came late){{/extended}}{{#eta}}; executable from block {{eta}}{{/eta}}</dd>
    </dl>
    <h2>Votes</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Community</th><th scope="col">Scheme</th><th scope="col">For</th><th scope="col">Against</th><th scope="col">Abstain</th><th scope="col">Voters</th><th scope="col">Turnout</th><th scope="col">Quorum</th></tr></thead>
    <tbody>{{#counts}}<tr><td>{{community}}</td><td>{{scheme}}</td><td>{{for}} ({{forShare}})</td><td>{{against}} ({{againstShare}})</td><td>{{abstain}}</td><td>{{voters}}</td><td>{{turnout}}</td><td>{{quorum}}, {{reached}}</td></tr>{{/counts}}</tbody>
    </table></div>
    <h2>Who voted</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Voter</th><th scope="col">Choice</th><th scope="col">Power at the snapshot</th><th scope="col">Block</th></tr></thead>
    <tbody>{{#cast}}<tr><td class="mono"><a href="/accounts/{{voter}}">{{voter}}</a></td><td>{{choice}}</td><td>{{power}}</td><td>{{height}}</td></tr>{{/cast}}</tbody>
    </table></div>
    <h2>Who could have voted and did not ({{absentCount}})</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Account</th><th scope="col">Power at the snapshot</th></tr></thead>
    <tbody>{{#absent}}<tr><td class="mono"><a href="/accounts/{{voter}}">{{voter}}</a></td><td>{{power}}</td></tr>{{/absent}}</tbody>
    </table></div>
    {{#moreAbsent}}<p>and {{count}} more with less power.</p>{{/moreAbsent}}
    <h2>Summary</h2>
    {{#summary}}<p>A summary (SHA-256 <span class="mono">{{hash}}</span>) was written by {{model}} and recorded by <a class="mono" href="/accounts/{{by}}">{{by}}</a>; the request that produced it: <a class="mono" href="/requests/{{request}}">{{request}}</a>.</p>{{/summary}}
    {{^summary}}<p>No summary recorded.</p>{{/summary}}
    <h2>Actions</h2>
    <pre class="mono scroll">{{actions}}</pre>
    """

    static let markets = """
    <h1>Markets</h1>
    <h2>Models</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Model</th><th scope="col">Quantization</th><th scope="col">Licence</th><th scope="col">Premium (per M tokens)</th><th scope="col">Utilization</th><th scope="col">Asks</th><th scope="col">Evaluations</th></tr></thead>
    <tbody>{{#models}}<tr><td>{{id}}</td><td>{{quantization}}</td><td>{{license}}</td><td>{{premium}}</td><td>{{utilization}}</td><td>{{asks}}</td><td>{{evaluations}}</td></tr>{{/models}}</tbody>
    </table></div>
    {{#models}}<h2>Spot premium of {{id}}</h2>
    {{{chart}}}
    {{/models}}
    <h2>Datasets</h2>
    <div class="scroll"><table>
    <thead><tr><th scope="col">Dataset</th><th scope="col">Version</th><th scope="col">Licence</th><th scope="col">Price</th><th scope="col">Contributors</th></tr></thead>
    <tbody>{{#datasets}}<tr><td>{{name}}</td><td>{{version}}</td><td>{{license}}</td><td>{{price}}</td><td>{{contributors}}</td></tr>{{/datasets}}</tbody>
    </table></div>
    {{^datasets}}<p>No datasets yet.</p>{{/datasets}}
    """

    static let search = """
    <h1>Search</h1>
    <p>Nothing matches <q>{{query}}</q>. Search by block height, block or transaction hash, address, request id or proposal id.</p>
    """

    static let error = """
    <h1>{{status}}</h1>
    <p>{{message}}</p>
    """
}
