// The flow as it ran: every HTTP request this page makes, drawn live as a sequence, the
// way `mcp-client --diagram` draws its own (see crates/mcp-auth-client/src/diagram.rs).
//
// One hook: `installFlowRecorder` wraps the page's `fetch`, so every request is drawn
// without the code that sends it knowing. The two steps that are not `fetch` (leaving for
// the authorization server, coming back with the code) are drawn by `navigated` and
// `returned`. Arrows show methods, paths (never queries), statuses and the names of the
// parameters that matter; a token appears only as the first 8 hex digits of its SHA-256.
// Records survive the visit to the authorization server in sessionStorage: they hold no
// token, code, state or verifier.

const KEY = 'mcp-browser.flow';
const MAX_RECORDS = 200;

const short = (v, max = 80) => (v.length > max ? `${v.slice(0, max)}…` : v);
const join = (head, notes) => (notes.length ? `${head} (${notes.join(', ')})` : head);

/** The first 8 hex digits of the SHA-256 of `token`: enough to tell tokens apart. */
export async function fingerprint(token) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest).slice(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
}

function bodyText(body) {
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  return null;
}

/**
 * What mattered in a request: `{ to, request, wellKnown }`, `to` being the origin.
 * `bearerFingerprint` is the fingerprint of the Authorization header's token, if any.
 */
export function describeRequest(url, init = {}, pageOrigin, bearerFingerprint = null) {
  const u = new URL(url, pageOrigin);
  const method = (init.method || 'GET').toUpperCase();
  const headers = new Headers(init.headers || {});
  const notes = [];
  const text = bodyText(init.body);
  const type = headers.get('content-type') || '';
  if (text !== null && (type.startsWith('application/x-www-form-urlencoded') || init.body instanceof URLSearchParams)) {
    const form = new URLSearchParams(text);
    for (const name of ['grant_type', 'resource', 'scope']) {
      if (form.has(name)) notes.push(`${name}=${short(form.get(name))}`);
    }
    if (form.has('code_verifier')) notes.push('code_verifier');
  } else if (text !== null) {
    try {
      const json = JSON.parse(text);
      if (json && typeof json.method === 'string') {
        const tool = json.method === 'tools/call' && json.params && json.params.name;
        notes.push(tool ? `${json.method} ${tool}` : json.method);
      }
    } catch {
      // Not JSON: nothing to name.
    }
  }
  const sameOrigin = u.origin === new URL(pageOrigin).origin;
  if (bearerFingerprint) notes.push(`Bearer ${bearerFingerprint}`);
  else if (sameOrigin && !u.pathname.startsWith('/.well-known/')) {
    notes.push(init.credentials === 'omit' ? 'no token' : 'no token, cookie if any');
  }
  return {
    to: sameOrigin ? 'RS' : u.origin,
    request: join(`${method} ${u.pathname}`, notes),
    wellKnown: method === 'GET' && u.pathname.startsWith('/.well-known/'),
  };
}

/** Parameters of a `WWW-Authenticate` header, enough to name what it says. */
function challengeNote(value) {
  const scheme = value.trim().split(/\s+/, 1)[0];
  const param = (name) => {
    const m = new RegExp(`(?:^|[\\s,])${name}\\s*=\\s*(?:"([^"]*)"|([^\\s,]+))`, 'i').exec(value);
    return m ? (m[1] ?? m[2]) : null;
  };
  const parts = [`WWW-Authenticate ${scheme}`];
  const error = param('error');
  if (error) parts.push(`error=${error}`);
  if (param('resource_metadata')) parts.push('resource_metadata');
  const scope = param('scope');
  if (scope) parts.push(`scope=${short(scope)}`);
  return parts.join(' ');
}

/** What mattered in a response: its status and the header that matters. */
export function describeResponse(status, headers) {
  const notes = [];
  const challenge = headers.get('www-authenticate');
  if (challenge) notes.push(challengeNote(challenge));
  const type = (headers.get('content-type') || '').split(';')[0].trim();
  if (status >= 200 && status < 300 && (type === 'text/event-stream' || type === 'application/octet-stream')) {
    notes.push(type);
  }
  return join(String(status), notes);
}

/** The records as a Mermaid `sequenceDiagram`. */
export function toMermaid(records, pageOrigin) {
  const host = (origin) => origin.replace(/^[a-z]+:\/\//, '');
  const roles = new Map();
  for (const r of records) {
    if (r.to === 'RS' || r.to === 'P') continue;
    roles.set(r.to, (roles.get(r.to) ?? true) && !!r.wellKnown);
  }
  const ids = new Map();
  const participants = [['P', 'page (this tab)']];
  if (records.some((r) => r.from === 'B')) participants.push(['B', 'browser']);
  participants.push(['RS', `resource server (${host(new URL(pageOrigin).origin)})`]);
  let m = 0;
  let a = 0;
  for (const [origin, onlyMeta] of roles) {
    const id = onlyMeta ? (m++ ? `M${m}` : 'M') : a++ ? `AS${a}` : 'AS';
    ids.set(origin, id);
    participants.push([id, `${onlyMeta ? 'metadata server' : 'authorization server'} (${host(origin)})`]);
  }
  const esc = (t) => t.replace(/[\r\n#;]/g, (c) => ({ '#': '#35;', ';': '#59;' })[c] ?? ' ');
  const lines = ['sequenceDiagram', '    autonumber'];
  for (const [id, label] of participants) lines.push(`    participant ${id} as ${esc(label)}`);
  for (const r of records) {
    const to = r.to === 'RS' || r.to === 'P' ? r.to : ids.get(r.to);
    lines.push(`    ${r.from}->>${to}: ${esc(r.request)}`);
    lines.push(r.response == null ? `    ${to}--x${r.from}: no response` : `    ${to}-->>${r.from}: ${esc(r.response)}`);
  }
  return `${lines.join('\n')}\n`;
}

function load() {
  try {
    const list = JSON.parse(sessionStorage.getItem(KEY) || '[]');
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/**
 * Wraps `globalThis.fetch` so that every request is recorded; `onChange(records)` runs
 * after each change. Returns the recorder.
 */
export function installFlowRecorder(onChange) {
  const pageOrigin = window.location.origin;
  const records = load();
  const changed = () => {
    while (records.length > MAX_RECORDS) records.shift();
    try {
      sessionStorage.setItem(KEY, JSON.stringify(records));
    } catch {
      // Storage full or refused: the live drawing still works.
    }
    onChange(records);
  };
  const original = globalThis.fetch.bind(globalThis);
  globalThis.fetch = async (input, init = {}) => {
    const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
    const auth = new Headers(init.headers || {}).get('authorization') || '';
    const m = /^(?:bearer|dpop)\s+(\S+)$/i.exec(auth);
    const fp = m ? await fingerprint(m[1]) : null;
    const record = { from: 'P', ...describeRequest(url, init, pageOrigin, fp), response: null };
    records.push(record);
    changed();
    const response = await original(input, init);
    record.response = describeResponse(response.status, response.headers);
    changed();
    return response;
  };
  onChange(records);
  return {
    pageOrigin,
    records,
    /** The page sends the browser to the authorization endpoint. */
    navigated(url) {
      const u = new URL(url);
      const q = u.searchParams;
      const notes = ['code_challenge_method', 'resource', 'scope']
        .filter((n) => q.has(n))
        .map((n) => `${n}=${short(q.get(n))}`);
      records.push({
        from: 'B',
        to: u.origin,
        request: join(`GET ${u.pathname}`, notes),
        wellKnown: false,
        response: 'login and consent, then a redirect back to this page',
      });
      changed();
    },
    /** The browser comes back to the page with the authorization response. */
    returned(search) {
      const q = new URLSearchParams(search);
      const names = ['code', 'error', 'state', 'iss'].filter((n) => q.has(n));
      records.push({
        from: 'B',
        to: 'P',
        request: join(`GET ${new URL(window.location.href).pathname}`, [names.join(', ')]),
        wellKnown: false,
        response: 'read by the page',
      });
      changed();
    },
    clear() {
      records.length = 0;
      changed();
    },
  };
}
