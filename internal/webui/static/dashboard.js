// The operations dashboard: sign-in into a session cookie, then live
// traffic and backends from the live feed (server-sent events), usage from
// the ledger, subscriptions and their limits, the effective config, reload
// and cache purge, and the demo's fault injection. Every change carries the
// session's CSRF token.
import { h, render } from 'preact';
import { useState, useEffect, useRef } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';

const html = htm.bind(h);
let csrf = '';

// api calls the dashboard's JSON API; an error carries the gateway's message.
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  if ((resp.headers.get('content-type') || '').includes('json')) data = await resp.json();
  if (!resp.ok) {
    const e = new Error(data?.error?.message || 'HTTP ' + resp.status);
    e.status = resp.status;
    throw e;
  }
  return data;
}

const fmt = (v, digits = 1) => (v == null ? '–' : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits }));
const ms = (s) => (s == null ? '–' : fmt(s * 1000, 0) + ' ms');

function SignIn({ onSession, error }) {
  const [key, setKey] = useState('');
  const [err, setErr] = useState(error || '');
  const submit = async (e) => {
    e.preventDefault();
    setErr('');
    try {
      onSession(await api('POST', 'api/session', { key: key.trim() }));
    } catch (e) {
      setErr(e.message);
    }
  };
  return html`<main><form class="signin" onSubmit=${submit} aria-labelledby="signin-title">
    <h2 id="signin-title">Sign in to the Sluice dashboard</h2>
    <p class="hint">With the admin key (admin.api_key) or a token with an admin role. The session lives in an HttpOnly cookie; the key is not kept in the browser.</p>
    <label for="key">Admin key</label>
    <input id="key" type="password" autocomplete="off" required value=${key} onInput=${(e) => setKey(e.target.value)} />
    ${err && html`<div class="error" id="signin-error" role="alert">${err}</div>`}
    <div class="row"><button id="signin" type="submit">Sign in</button></div>
  </form></main>`;
}

// Chart draws series over time with uPlot on a canvas.
function Chart({ id, title, labels, data, unit }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const styles = getComputedStyle(document.documentElement);
    const colors = ['--accent', '--bad', '--warn', '--ok'].map((v) => styles.getPropertyValue(v).trim());
    const opts = {
      width: Math.max(box.current.clientWidth, 280), height: 180,
      legend: { show: true },
      scales: { x: { time: true } },
      axes: [{ stroke: styles.getPropertyValue('--muted') }, { stroke: styles.getPropertyValue('--muted'), size: 60 }],
      series: [{}, ...labels.map((l, i) => ({ label: l, stroke: colors[i % colors.length], width: 2, value: (u, v) => (v == null ? '–' : fmt(v, 2) + (unit || '')) }))],
    };
    plot.current = new uPlot(opts, data, box.current);
    const resize = () => plot.current.setSize({ width: Math.max(box.current.clientWidth, 280), height: 180 });
    window.addEventListener('resize', resize);
    return () => { window.removeEventListener('resize', resize); plot.current.destroy(); };
  }, []);
  useEffect(() => { plot.current?.setData(data); }, [data]);
  return html`<figure class="chart" id=${id} aria-label=${title}><figcaption><strong>${title}</strong></figcaption><div ref=${box}></div></figure>`;
}

function series(snaps, pick) {
  return [snaps.map((s) => Date.parse(s.time) / 1000), ...pick.map((f) => snaps.map(f))];
}

function Backends({ snap }) {
  if (!snap) return null;
  return html`<section class="card"><h2>Backends</h2><div class="scroll"><table id="backends">
    <thead><tr><th>backend</th><th>region</th><th>breaker</th><th>why / until</th><th class="num">in flight</th>
      <th class="num">latency</th><th class="num">remaining tokens</th><th class="num">requests</th><th class="num">errors</th></tr></thead>
    <tbody>${snap.backends.map((b) => html`<tr id=${'backend-' + b.name}>
      <td>${b.name}</td><td>${b.region}</td>
      <td><span class=${'state state-' + b.state}>${b.state}</span></td>
      <td>${b.state !== 'closed' ? (b.reason || '') + (b.reopens_at ? ' until ' + new Date(b.reopens_at).toLocaleTimeString() : '') : ''}</td>
      <td class="num">${b.in_flight}</td><td class="num">${fmt(b.latency_ms, 0)} ms</td>
      <td class="num">${b.remaining_tokens < 0 ? '–' : fmt(b.remaining_tokens, 0)}</td>
      <td class="num">${fmt(b.requests, 0)}</td><td class="num">${fmt(b.errors, 0)}</td></tr>`)}</tbody>
  </table></div>
  ${snap.pools?.length > 0 && html`<h2>Pools</h2><ul class="pools">${snap.pools.map((p) => html`<li><strong>${p.name}</strong>: ${p.groups.map((g, i) => html`${i > 0 ? ' → ' : ''}priority ${g.priority} [${g.backends.map((n) => {
    const st = snap.backends.find((b) => b.name === n)?.state;
    return html`<span class=${'state-' + st}>${n} </span>`;
  })}]`)}</li>`)}</ul>`}
  </section>`;
}

function Live() {
  const [snaps, setSnaps] = useState([]);
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    const es = new EventSource('api/live');
    es.addEventListener('history', (e) => { setSnaps(JSON.parse(e.data)); setStatus('live'); });
    es.addEventListener('snapshot', (e) => {
      const s = JSON.parse(e.data);
      setSnaps((old) => { const n = old.length >= 900 ? old.slice(1) : old.slice(); n.push(s); return n; });
    });
    es.onerror = () => setStatus('reconnecting');
    return () => es.close();
  }, []);
  // Cost today comes from the ledger (right across instances), every 30 s.
  const [today, setToday] = useState(null);
  useEffect(() => {
    const load = () => api('GET', 'api/admin/usage?' + new URLSearchParams({ from: isoDate(new Date()), group_by: 'day' }))
      .then((r) => setToday((r.rows || []).reduce((a, x) => ({ cost: a.cost + x.cost, tokens: a.tokens + x.total_tokens }), { cost: 0, tokens: 0 })), () => {});
    load();
    const t = setInterval(load, 30000);
    return () => clearInterval(t);
  }, []);
  const last = snaps[snaps.length - 1];
  const recent = snaps.slice(-300);
  return html`<div>
    <p class="hint" id="live-status">Live feed: ${status}${last ? ', ' + new Date(last.time).toLocaleTimeString() : ''}</p>
    ${last && html`<div class="tiles">
      <div class="tile"><div class="v" id="tile-rps">${fmt(last.requests_per_second)}</div><div class="k">requests / s</div></div>
      <div class="tile"><div class="v">${fmt(last.tokens_per_minute, 0)}</div><div class="k">tokens / min</div></div>
      <div class="tile"><div class="v">${fmt(last.errors_per_second['4xx'] + last.errors_per_second['5xx'] + last.errors_per_second.other, 2)}</div><div class="k">errors / s</div></div>
      <div class="tile"><div class="v">${ms(last.latency_p50_seconds)}</div><div class="k">latency p50 (p95 ${ms(last.latency_p95_seconds)})</div></div>
      <div class="tile"><div class="v">${ms(last.ttft_p50_seconds)}</div><div class="k">first token p50 (p95 ${ms(last.ttft_p95_seconds)})</div></div>
      <div class="tile"><div class="v">${last.cache_hit_ratio == null ? '–' : fmt(last.cache_hit_ratio * 100, 0) + ' %'}</div><div class="k">cache hits</div></div>
      <div class="tile"><div class="v" id="tile-cost">${today ? fmt(today.cost, 4) : '–'}</div><div class="k">cost today (${today ? fmt(today.tokens, 0) : '–'} tokens, all instances)</div></div>
      <div class="tile"><div class="v">${fmt(last.requests_total, 0)}</div><div class="k">requests since start (this instance)</div></div>
    </div>`}
    ${snaps.length > 0 && html`<div class="charts">
      <${Chart} id="chart-rps" title="Requests per second" labels=${['requests/s']} data=${series(recent, [(s) => s.requests_per_second])} />
      <${Chart} id="chart-tokens" title="Tokens per minute" labels=${['tokens/min']} data=${series(recent, [(s) => s.tokens_per_minute])} />
      <${Chart} id="chart-errors" title="Errors per second by class" labels=${['4xx', '5xx', 'other']}
        data=${series(recent, [(s) => s.errors_per_second['4xx'], (s) => s.errors_per_second['5xx'], (s) => s.errors_per_second.other])} />
      <${Chart} id="chart-latency" title="Latency and first token (s)" labels=${['p50', 'p95', 'TTFT p50', 'TTFT p95']} unit=" s"
        data=${series(recent, [(s) => s.latency_p50_seconds, (s) => s.latency_p95_seconds, (s) => s.ttft_p50_seconds, (s) => s.ttft_p95_seconds])} />
    </div>`}
    <${Backends} snap=${last} />
    ${last?.quota_remaining_tokens && html`<section class="card"><h2>Quota left</h2><table id="quotas">
      <thead><tr><th>subscription</th><th class="num">tokens left this period</th></tr></thead>
      <tbody>${Object.entries(last.quota_remaining_tokens).sort().map(([k, v]) => html`<tr><td>${k}</td><td class="num">${fmt(v, 0)}</td></tr>`)}</tbody>
    </table></section>`}
  </div>`;
}

function isoDate(d) { return d.toISOString().slice(0, 10); }

function Usage() {
  const now = new Date();
  const [from, setFrom] = useState(isoDate(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1))));
  const [to, setTo] = useState(isoDate(new Date(now.getTime() + 86400000)));
  const [groupBy, setGroupBy] = useState('subscription,model');
  const [report, setReport] = useState(null);
  const [err, setErr] = useState('');
  const query = () => new URLSearchParams({ from, to, group_by: groupBy }).toString();
  const [top, setTop] = useState(null);
  const run = async (e) => {
    e?.preventDefault();
    setErr('');
    try {
      setReport(await api('GET', 'api/admin/usage?' + query()));
      const by = (g) => api('GET', 'api/admin/usage?' + new URLSearchParams({ from, to, group_by: g })).then((r) => r.rows || []);
      const [subs, models] = await Promise.all([by('subscription'), by('model')]);
      setTop({ subs, models });
    } catch (e) { setErr(e.message); }
  };
  useEffect(() => { run(); }, []);
  const groups = report?.group_by || [];
  const maxTokens = Math.max(1, ...(report?.rows || []).map((r) => r.total_tokens));
  return html`<section class="card"><h2>Usage</h2>
    <form class="inline" onSubmit=${run}>
      <div><label for="usage-from">From</label><input id="usage-from" type="date" value=${from} onInput=${(e) => setFrom(e.target.value)} /></div>
      <div><label for="usage-to">To (exclusive)</label><input id="usage-to" type="date" value=${to} onInput=${(e) => setTo(e.target.value)} /></div>
      <div><label for="usage-group">Group by</label><input id="usage-group" value=${groupBy} onInput=${(e) => setGroupBy(e.target.value)} /></div>
      <button id="usage-run" type="submit">Show</button>
      <a id="usage-csv" href=${'api/usage.csv?' + query()} download="sluice-usage.csv">Download CSV</a>
    </form>
    ${err && html`<div class="error" role="alert">${err}</div>`}
    ${report && html`<div class="scroll"><table id="usage-table">
      <thead><tr>${groups.map((g) => html`<th>${g}</th>`)}<th class="num">requests</th><th class="num">errors</th><th class="num">prompt_tokens</th>
        <th class="num">completion_tokens</th><th class="num">total_tokens</th><th class="num">cached_tokens</th><th class="num">cost</th>
        <th class="num">saved_tokens</th><th class="num">saved_cost</th><th>share</th></tr></thead>
      <tbody>${(report.rows || []).map((r) => html`<tr>${groups.map((g) => html`<td>${r.group[g]}</td>`)}
        <td class="num">${r.requests}</td><td class="num">${r.errors}</td><td class="num">${r.prompt_tokens}</td>
        <td class="num">${r.completion_tokens}</td><td class="num">${r.total_tokens}</td><td class="num">${r.cached_tokens}</td>
        <td class="num">${r.cost.toFixed(6)}</td><td class="num">${r.saved_tokens || 0}</td><td class="num">${(r.saved_cost || 0).toFixed(6)}</td>
        <td><div class="bar" role="img" aria-label=${Math.round((100 * r.total_tokens) / maxTokens) + '% of the largest'}><span style=${{ width: (100 * r.total_tokens) / maxTokens + '%' }}></span></div></td></tr>`)}</tbody>
    </table></div>`}
    ${top && html`<div class="charts">
      <${Top} id="top-subscriptions" title="Top subscriptions" group="subscription" rows=${top.subs} />
      <${Top} id="top-models" title="Top models" group="model" rows=${top.models} />
    </div>`}
  </section>`;
}

// Top lists the rows by tokens, then by cost, with bars.
function Top({ id, title, group, rows }) {
  const byTokens = rows.slice().sort((a, b) => b.total_tokens - a.total_tokens).slice(0, 10);
  const max = Math.max(1, ...byTokens.map((r) => r.total_tokens));
  const maxCost = Math.max(1e-9, ...byTokens.map((r) => r.cost));
  return html`<figure class="chart" id=${id}><figcaption><strong>${title}</strong> <span class="hint">by tokens and cost</span></figcaption>
    <table><thead><tr><th>${group}</th><th class="num">tokens</th><th></th><th class="num">cost</th><th></th></tr></thead><tbody>
    ${byTokens.map((r) => html`<tr><td>${r.group[group]}</td><td class="num">${fmt(r.total_tokens, 0)}</td>
      <td><div class="bar"><span style=${{ width: (100 * r.total_tokens) / max + '%' }}></span></div></td>
      <td class="num">${r.cost.toFixed(4)}</td><td><div class="bar"><span style=${{ width: (100 * r.cost) / maxCost + '%' }}></span></div></td></tr>`)}
    </tbody></table></figure>`;
}

const kindNames = { tokens_per_minute: 'tokens per minute', requests_per_minute: 'requests per minute', token_quota: 'token quota', budget: 'budget' };

// until says how long until t, roughly.
function until(t) {
  const s = Math.max(0, (Date.parse(t) - Date.now()) / 1000);
  if (s < 120) return Math.round(s) + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  if (s < 172800) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' days';
}

// Meter is a bar of used against limit, with the numbers beside it.
function Meter({ label, used, limit, unit, digits }) {
  const share = limit > 0 ? used / limit : 0;
  const text = fmt(used, digits) + ' / ' + fmt(limit, digits) + ' ' + unit;
  return html`<div class="meter-row">
    <div class="meter" role="meter" aria-label=${label} aria-valuemin="0" aria-valuemax=${limit}
      aria-valuenow=${Math.min(used, limit)} aria-valuetext=${text} data-used=${used}>
      <span class=${(share >= 1 ? 'full' : share >= 0.8 ? 'high' : '') + (used > 0 ? ' some' : '')} style=${{ width: Math.min(100, 100 * share) + '%' }}></span></div>
    <span class="meter-text">${text}</span></div>`;
}

// Limits shows each subscription's limits as counted in their current
// windows (every instance's requests), refreshed every 5 s.
function Limits() {
  const [data, setData] = useState(null);
  const [err, setErr] = useState('');
  useEffect(() => {
    let live = true;
    const load = () => api('GET', 'api/admin/limits').then(
      (d) => { if (live) { setData(d); setErr(''); } },
      (e) => { if (live) { setData(null); setErr(e.message); } });
    load();
    const t = setInterval(load, 5000);
    return () => { live = false; clearInterval(t); };
  }, []);
  const limited = (data?.subscriptions || []).filter((s) => s.limits.length > 0);
  const unlimited = (data?.subscriptions || []).filter((s) => s.limits.length === 0);
  return html`<section class="card" aria-labelledby="limits-title"><h2 id="limits-title">Limits <span class="hint">used in the current window, all instances</span></h2>
    ${err && html`<div class="error" role="alert" id="limits-error">Limits unavailable: ${err}</div>`}
    ${data && html`<div class="scroll"><table id="limits">
      <thead><tr><th>subscription</th><th>limit</th><th>used</th><th>resets in</th></tr></thead>
      <tbody>${limited.map((s) => s.limits.map((l, i) => {
        const what = kindNames[l.kind] + (l.kind === 'token_quota' || l.kind === 'budget' ? ' (' + l.period + ')' : '') + (l.model ? ' on ' + l.model : '');
        return html`<tr data-sub=${s.name} data-kind=${l.kind} data-model=${l.model || ''}>
          <td>${i === 0 ? html`<strong>${s.name}</strong> <span class="hint">${s.product}${s.state !== 'active' ? ', ' + s.state : ''}</span>` : ''}</td>
          <td>${what}${l.scope !== 'subscription' && l.scope !== 'subscription-model' ? html` <span class="hint">(shared: ${l.scope})</span>` : ''}</td>
          <td><${Meter} label=${s.name + ': ' + what} used=${l.used} limit=${l.limit} unit=${l.unit} digits=${l.kind === 'budget' ? 4 : 0} /></td>
          <td title=${new Date(l.resets_at).toLocaleString()}>${until(l.resets_at)}</td></tr>`;
      }))}</tbody></table></div>
      ${unlimited.length > 0 && html`<p class="hint" id="no-limits">Without limits: ${unlimited.map((s) => s.name).join(', ')}</p>`}`}
  </section>`;
}

function Subscriptions() {
  const [data, setData] = useState(null);
  const [err, setErr] = useState('');
  const [shown, setShown] = useState(null);
  const [name, setName] = useState('');
  const [product, setProduct] = useState('');
  const load = async () => {
    try { setData(await api('GET', 'api/admin/subscriptions')); setErr(''); } catch (e) { setErr(e.status === 404 ? 'This gateway keeps no run-time subscriptions (its usage store does not).' : e.message); }
  };
  useEffect(() => { load(); }, []);
  const act = async (fn) => { try { setErr(''); const r = await fn(); if (r?.primary_key || r?.secondary_key) setShown(r); await load(); } catch (e) { setErr(e.message); } };
  const create = (e) => { e.preventDefault(); act(() => api('POST', 'api/admin/subscriptions', { name, product })); };
  return html`<section class="card"><h2>Subscriptions</h2>
    ${err && html`<div class="error" role="alert">${err}</div>`}
    ${shown && html`<div class="notice" role="status" id="new-keys">Keys of ${shown.name}, shown once:
      ${shown.primary_key && html`<div>primary: <code>${shown.primary_key}</code></div>`}
      ${shown.secondary_key && html`<div>secondary: <code>${shown.secondary_key}</code></div>`}
      <button class="secondary" onClick=${() => setShown(null)}>Hide</button></div>`}
    <form class="inline" onSubmit=${create}>
      <div><label for="sub-name">Name</label><input id="sub-name" required value=${name} onInput=${(e) => setName(e.target.value)} /></div>
      <div><label for="sub-product">Product</label><input id="sub-product" required value=${product} onInput=${(e) => setProduct(e.target.value)} /></div>
      <button id="sub-create" type="submit">Create</button>
    </form>
    ${data && html`<div class="scroll"><table id="subscriptions">
      <thead><tr><th>name</th><th>product</th><th>state</th><th>keys</th><th>source</th><th>actions</th></tr></thead>
      <tbody>
      ${data.subscriptions.map((s) => html`<tr id=${'sub-' + s.name}><td>${s.name}</td><td>${s.product}</td><td>${s.state}</td>
        <td>…${s.primary_key_last4} / …${s.secondary_key_last4}</td><td>run time</td>
        <td><button class="secondary" onClick=${() => act(() => api('POST', 'api/admin/subscriptions/' + encodeURIComponent(s.name) + '/regenerate', { key: 'primary' }))}>Regenerate primary</button>
          ${' '}<button class="secondary" onClick=${() => act(() => api('PATCH', 'api/admin/subscriptions/' + encodeURIComponent(s.name), { state: s.state === 'active' ? 'suspended' : 'active' }))}>${s.state === 'active' ? 'Suspend' : 'Resume'}</button></td></tr>`)}
      ${(data.config_subscriptions || []).map((s) => html`<tr><td>${s.name}</td><td>${s.product}</td><td>active</td><td></td><td>config file</td><td></td></tr>`)}
      </tbody></table></div>`}
  </section>`;
}

function Config() {
  const [cfg, setCfg] = useState(null);
  const [msg, setMsg] = useState('');
  const [err, setErr] = useState('');
  const load = async () => { try { setCfg(await api('GET', 'api/admin/config')); } catch (e) { setErr(e.message); } };
  useEffect(() => { load(); }, []);
  const reload = async () => {
    setMsg(''); setErr('');
    try { await api('POST', 'api/admin/reload'); setMsg('Reloaded.'); await load(); } catch (e) { setErr(e.message); }
  };
  return html`<section class="card"><h2>Effective config <span class="hint">(secrets redacted)</span></h2>
    <button id="reload" onClick=${reload}>Reload the config</button>
    ${msg && html`<p role="status" id="reload-result">${msg}</p>`}
    ${err && html`<div class="error" role="alert">${err}</div>`}
    ${cfg && html`<pre id="config" class="scroll">${JSON.stringify(cfg, null, 2)}</pre>`}
  </section>`;
}

// Cache purges the response cache, all of it or one subscription's, after
// a second click.
function Cache() {
  const [sub, setSub] = useState('');
  const [asking, setAsking] = useState(false);
  const [msg, setMsg] = useState('');
  const [err, setErr] = useState('');
  const yes = useRef(null);
  useEffect(() => { if (asking) yes.current?.focus(); }, [asking]);
  const purge = async () => {
    setAsking(false); setMsg(''); setErr('');
    try {
      const r = await api('DELETE', 'api/admin/cache' + (sub.trim() ? '?' + new URLSearchParams({ subscription: sub.trim() }) : ''));
      const n = r?.purged;
      setMsg((n != null ? 'Purged ' + fmt(n, 0) + (n === 1 ? ' entry' : ' entries') : 'Purged') + (sub.trim() ? ' of ' + sub.trim() : '') + '.');
    } catch (e) { setErr(e.message); }
  };
  return html`<section class="card" aria-labelledby="cache-title"><h2 id="cache-title">Response cache</h2>
    <p class="hint">Purging drops cached answers on every instance that shares the cache store; requests go to the backends until it fills again.</p>
    <form class="inline" onSubmit=${(e) => { e.preventDefault(); setMsg(''); setAsking(true); }}>
      <div><label for="purge-sub">Subscription (empty: all)</label><input id="purge-sub" value=${sub} onInput=${(e) => setSub(e.target.value)} /></div>
      <button id="purge" type="submit" class="secondary">Purge the cache…</button>
    </form>
    ${asking && html`<div class="confirm" role="alertdialog" aria-labelledby="purge-question" id="purge-confirm">
      <p id="purge-question">Purge ${sub.trim() ? 'the cached answers of ' + sub.trim() : 'every cached answer'}? This cannot be undone.</p>
      <button id="purge-yes" ref=${yes} onClick=${purge}>Purge</button>${' '}<button id="purge-no" class="secondary" onClick=${() => setAsking(false)}>Cancel</button></div>`}
    ${msg && html`<p role="status" id="purge-result">${msg}</p>`}
    ${err && html`<div class="error" role="alert" id="purge-error">${err}</div>`}
  </section>`;
}

function Demo() {
  const [data, setData] = useState(null);
  const [err, setErr] = useState('');
  useEffect(() => { api('GET', 'api/demo').then(setData, (e) => setErr(e.message)); }, []);
  const inject = async (backend, fault) => {
    try { setErr(''); setData(await api('POST', 'api/demo', { backend, fault })); } catch (e) { setErr(e.message); }
  };
  return html`<section class="card"><h2>Demo: inject faults into the simulated backends</h2>
    <p class="hint">Make the PTU answer 429 with Retry-After and watch its breaker open on the Live tab, the pool spill over to PAYG, and the breaker close again.</p>
    ${err && html`<div class="error" role="alert">${err}</div>`}
    ${data && html`<table id="demo"><thead><tr><th>backend</th><th>region</th><th>fault</th></tr></thead><tbody>
      ${data.backends.map((b) => html`<tr><td>${b.name}</td><td>${b.region}</td><td>
        <label class="sr-only" for=${'fault-' + b.name}>Fault of ${b.name}</label>
        <select id=${'fault-' + b.name} value=${b.fault} onChange=${(e) => inject(b.name, e.target.value)}>
          ${data.faults.map((f) => html`<option value=${f}>${f}</option>`)}</select></td></tr>`)}
    </tbody></table>`}
  </section>`;
}

function Dashboard({ session, onSignOut }) {
  const tabs = [['live', 'Live'], ['usage', 'Usage'], ['subscriptions', 'Subscriptions'], ['config', 'Config']];
  if (session.demo) tabs.push(['demo', 'Demo']);
  const [tab, setTab] = useState(() => (tabs.some(([k]) => k === location.hash.slice(1)) ? location.hash.slice(1) : 'live'));
  useEffect(() => { history.replaceState(null, '', '#' + tab); }, [tab]);
  const signOut = async () => { try { await api('DELETE', 'api/session'); } finally { onSignOut(); } };
  return html`
    <header class="top"><h1>Sluice dashboard</h1>
      <nav class="tabs" role="tablist">${tabs.map(([k, label]) => html`<button role="tab" id=${'tab-' + k} aria-selected=${tab === k} onClick=${() => setTab(k)}>${label}</button>`)}</nav>
      <span class="spacer"></span><button class="secondary" id="signout" onClick=${signOut}>Sign out</button></header>
    <main role="tabpanel">
      ${tab === 'live' && html`<${Live} />`}
      ${tab === 'usage' && html`<${Usage} />`}
      ${tab === 'subscriptions' && html`<${Limits} /><${Subscriptions} />`}
      ${tab === 'config' && html`<${Cache} /><${Config} />`}
      ${tab === 'demo' && html`<${Demo} />`}
    </main>`;
}

function App() {
  const [session, setSession] = useState(undefined);
  // storeErr is why the session could not be checked (its store is down).
  const [storeErr, setStoreErr] = useState('');
  useEffect(() => {
    fetch('api/session', { credentials: 'same-origin' })
      .then((r) => r.json())
      .then((s) => {
        if (s.signed_in) { csrf = s.csrf_token; setSession(s); return; }
        setStoreErr(s.error?.message || '');
        setSession(null);
      }, () => setSession(null));
  }, []);
  if (session === undefined) return null;
  if (!session) return html`<${SignIn} error=${storeErr} onSession=${(s) => { csrf = s.csrf_token; setSession(s); }} />`;
  return html`<${Dashboard} session=${session} onSignOut=${() => { csrf = ''; setSession(null); }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
