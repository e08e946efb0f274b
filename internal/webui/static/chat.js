// The chat app: signs in with a subscription key (kept in sessionStorage
// only), calls the gateway's own /v1/chat/completions with streaming, and
// shows under each answer which backend and region served it.
import { h, render } from 'preact';
import { useState, useEffect, useRef } from 'preact/hooks';
import htm from 'htm';
import { markdown } from './md.js';

const html = htm.bind(h);
const KEY = 'sluice.chat.key';
const MODEL = 'sluice.chat.model';
const CONVERSATION = 'sluice.chat.conversation';

function authHeaders(key) {
  return { Authorization: 'Bearer ' + key };
}

// errorText turns a refusal into a sentence: the gateway's JSON error
// message, with Retry-After for a 429.
async function errorText(resp) {
  let msg = '', code = '';
  try {
    const body = await resp.json();
    msg = body?.error?.message || '';
    code = body?.error?.code || '';
  } catch { /* not JSON */ }
  const retry = resp.headers.get('retry-after');
  switch (resp.status) {
    case 401: return 'The key was refused (401). Sign out and sign in with a valid subscription key.';
    case 429: return 'Rate limited (429' + (code ? ', ' + code : '') + '): ' + (msg || 'too many requests.') +
      (retry && !/retry after/i.test(msg) ? ' Retry after ' + retry + ' s.' : '');
    case 403: return 'Refused (403' + (code ? ', ' + code : '') + '): ' + (msg || 'not allowed.');
    default: return 'Error ' + resp.status + (code ? ' (' + code + ')' : '') + ': ' + (msg || resp.statusText);
  }
}

function SignIn({ onKey }) {
  const [key, setKey] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setErr('');
    try {
      const resp = await fetch('/v1/models', { headers: authHeaders(key.trim()) });
      if (!resp.ok) { setErr(await errorText(resp)); return; }
      const body = await resp.json();
      onKey(key.trim(), (body.data || []).map((m) => m.id));
    } catch (e) {
      setErr('The gateway cannot be reached: ' + e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <form class="signin" onSubmit=${submit} aria-labelledby="signin-title">
      <h2 id="signin-title">Sign in to the chat</h2>
      <p class="hint">Your subscription key (or a token) stays in this browser tab's session storage; it is sent only to this gateway.</p>
      <label for="key">Subscription key</label>
      <input id="key" type="password" autocomplete="off" required value=${key} onInput=${(e) => setKey(e.target.value)} />
      ${err && html`<div class="error" role="alert">${err}</div>`}
      <div class="row"><button id="signin" type="submit" disabled=${busy}>Sign in</button></div>
    </form>`;
}

function Meta({ m }) {
  if (!m.meta) return null;
  const x = m.meta;
  const ms = (v) => (v == null ? '–' : v < 1000 ? Math.round(v) + ' ms' : (v / 1000).toFixed(2) + ' s');
  return html`<div class="meta">
    ${x.region && html`<span class="server">Server on: ${x.region}</span>`}
    ${x.backend && html`<span class="backend">backend: ${x.backend}</span>`}
    ${x.usage && html`<span class="tokens">tokens: ${x.usage.prompt_tokens} prompt / ${x.usage.completion_tokens} completion</span>`}
    <span class="ttft">first token: ${ms(x.ttft)}</span>
    <span class="total">total: ${ms(x.total)}</span>
    ${x.cache && html`<span class="cache">cache: ${x.cache}</span>`}
    ${x.remaining != null && html`<span class="remaining">remaining tokens: ${x.remaining}</span>`}
  </div>`;
}

function Message({ m }) {
  return html`<article class=${'msg ' + m.role} aria-label=${m.role === 'user' ? 'You' : 'Assistant'}>
    <div class="who">${m.role === 'user' ? 'You' : 'Assistant'}</div>
    <div class="content">${m.role === 'assistant' ? markdown(m.content) : m.content}</div>
    ${m.error && html`<div class="error" role="alert">${m.error}</div>`}
    <${Meta} m=${m} />
  </article>`;
}

function loadConversation() {
  try { return JSON.parse(localStorage.getItem(CONVERSATION)) || []; } catch { return []; }
}

function Chat({ apiKey, models, onSignOut }) {
  const [messages, setMessages] = useState(loadConversation);
  const [model, setModel] = useState(() => {
    const m = sessionStorage.getItem(MODEL);
    return models.includes(m) ? m : models[0] || '';
  });
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const abort = useRef(null);
  const list = useRef(null);

  useEffect(() => {
    localStorage.setItem(CONVERSATION, JSON.stringify(messages.filter((m) => !m.streaming)));
    if (list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [messages]);
  useEffect(() => { sessionStorage.setItem(MODEL, model); }, [model]);

  const update = (fn) => setMessages((ms) => {
    const copy = ms.slice();
    copy[copy.length - 1] = fn({ ...copy[copy.length - 1] });
    return copy;
  });

  const send = async (e) => {
    e.preventDefault();
    const content = text.trim();
    if (!content || busy) return;
    const history = messages.filter((m) => !m.error || m.content).map((m) => ({ role: m.role, content: m.content }));
    history.push({ role: 'user', content });
    setMessages((ms) => [...ms, { role: 'user', content }, { role: 'assistant', content: '', streaming: true }]);
    setText('');
    setBusy(true);
    const ctl = new AbortController();
    abort.current = ctl;
    const start = performance.now();
    let ttft = null;
    try {
      const resp = await fetch('/v1/chat/completions', {
        method: 'POST', signal: ctl.signal,
        headers: { ...authHeaders(apiKey), 'Content-Type': 'application/json' },
        body: JSON.stringify({ model, messages: history, stream: true, stream_options: { include_usage: true } }),
      });
      const meta = {
        region: resp.headers.get('x-ms-region'),
        backend: resp.headers.get('x-sluice-backend'),
        remaining: resp.headers.get('x-ratelimit-remaining-tokens'),
        cache: resp.headers.get('x-sluice-cache'),
      };
      if (!resp.ok) {
        const msg = await errorText(resp);
        update((m) => ({ ...m, streaming: false, error: msg }));
        return;
      }
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let usage = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of event.split('\n')) {
            if (!line.startsWith('data:')) continue;
            const data = line.slice(5).trim();
            if (data === '[DONE]') continue;
            let chunk;
            try { chunk = JSON.parse(data); } catch { continue; }
            if (chunk.error) throw new Error(chunk.error.message || 'the stream broke off');
            if (chunk.usage) usage = chunk.usage;
            const delta = chunk.choices?.[0]?.delta?.content;
            if (delta) {
              if (ttft == null) ttft = performance.now() - start;
              update((m) => ({ ...m, content: m.content + delta }));
            }
          }
        }
      }
      const total = performance.now() - start;
      update((m) => ({ ...m, streaming: false, meta: { ...meta, usage, ttft, total } }));
    } catch (err) {
      const stopped = err.name === 'AbortError';
      update((m) => ({ ...m, streaming: false, error: stopped ? 'Stopped.' : 'The answer broke off: ' + err.message }));
    } finally {
      setBusy(false);
      abort.current = null;
    }
  };

  const keyDown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey) send(e);
  };

  return html`
    <header class="top">
      <h1>Sluice chat</h1>
      <label for="model" class="sr-only">Model</label>
      <select id="model" value=${model} onChange=${(e) => setModel(e.target.value)}>
        ${models.map((m) => html`<option value=${m}>${m}</option>`)}
      </select>
      <span class="spacer"></span>
      <button class="secondary" id="new" type="button" onClick=${() => setMessages([])} disabled=${busy}>New conversation</button>
      <button class="secondary" id="signout" type="button" onClick=${onSignOut}>Sign out</button>
    </header>
    <div class="chat">
      <div class="messages" ref=${list} aria-live="polite">
        ${messages.length === 0 && html`<p class="hint">Ask something. Under each answer you see which backend and region served it.</p>`}
        ${messages.map((m) => html`<${Message} m=${m} />`)}
      </div>
      <form class="composer" onSubmit=${send}>
        <label for="prompt" class="sr-only">Message</label>
        <textarea id="prompt" rows="2" placeholder="Message (Enter sends, Shift+Enter for a new line)" value=${text}
          onInput=${(e) => setText(e.target.value)} onKeyDown=${keyDown}></textarea>
        ${busy
          ? html`<button id="stop" type="button" class="secondary" onClick=${() => abort.current?.abort()}>Stop</button>`
          : html`<button id="send" type="submit" disabled=${!text.trim()}>Send</button>`}
      </form>
    </div>`;
}

function App() {
  const [auth, setAuth] = useState(null);
  useEffect(() => {
    const key = sessionStorage.getItem(KEY);
    if (!key) { setAuth({ key: null }); return; }
    fetch('/v1/models', { headers: authHeaders(key) })
      .then((r) => (r.ok ? r.json() : Promise.reject(r)))
      .then((b) => setAuth({ key, models: (b.data || []).map((m) => m.id) }))
      .catch(() => { sessionStorage.removeItem(KEY); setAuth({ key: null }); });
  }, []);
  if (!auth) return null;
  if (!auth.key) {
    return html`<main><${SignIn} onKey=${(key, models) => { sessionStorage.setItem(KEY, key); setAuth({ key, models }); }} /></main>`;
  }
  return html`<${Chat} apiKey=${auth.key} models=${auth.models}
    onSignOut=${() => { sessionStorage.removeItem(KEY); setAuth({ key: null }); }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
