// The page: signs in as a public OAuth client, trades the access token for the resource
// server's session cookie, and talks MCP over the legacy SSE transport.
//
// Everything placed on screen goes through textContent (never innerHTML). The access
// token lives in a variable of this module only: it is never written to storage, the
// URL, the screen or the console. Only the PKCE verifier and `state` wait in
// sessionStorage while the browser visits the authorization server, and are removed as
// soon as the callback is read.

import {
  FlowError,
  authorizationServerMetadataUrls,
  authorizationUrl,
  bearerChallenge,
  checkAuthorizationServerMetadata,
  chooseScopes,
  describeTokenResponse,
  exchangeCode,
  isLoopbackOrHttps,
  pkcePair,
  protectedResourceMetadataUrls,
  randomToken,
  readAuthorizationResponse,
  resourceMatches,
} from './oauth.js';
import { LegacySseClient, PROTOCOL_VERSION, RpcError } from './mcp-sse.js';
import { installFlowRecorder, toMermaid } from './flow.js';

const PENDING_KEY = 'mcp-browser.pending-sign-in';
const CLIENT_INFO = { name: 'mcp-browser-page', version: '0.1.0' };

const config = {
  clientId: metaContent('oauth-client-id', 'mcp-browser'),
  sseUrl: new URL(metaContent('mcp-sse-path', '/sse'), window.location.origin),
  sessionUrl: new URL(metaContent('mcp-session-path', '/session'), window.location.origin),
  redirectUri: new URL('callback', document.baseURI).toString(),
  homeUrl: new URL('./', document.baseURI).toString(),
};

// Held in memory only; dropped on sign-out and when the tab closes.
let accessToken = null;
let client = null;
// Draws every request of this page (see flow.js); installed by start().
let flow = null;

const $ = (id) => document.getElementById(id);

function metaContent(name, fallback) {
  const meta = document.querySelector(`meta[name="${name}"]`);
  return meta && meta.content ? meta.content : fallback;
}

/** Creates an element with optional class and text (always set through textContent). */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** A long opaque identifier, shortened for the header. */
function shorten(text) {
  if (typeof text !== 'string' || !text) return null;
  return text.length > 14 ? `subject ${text.slice(0, 12)}…` : `subject ${text}`;
}

function pretty(value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

// ---------------------------------------------------------------------------------
// State shown in the header.

function setState(state, text) {
  document.body.dataset.state = state;
  $('status-text').textContent = text;
  $('sign-in').hidden = state === 'signed-in' || state === 'working';
  $('sign-out').hidden = state !== 'signed-in';
  $('sign-in').disabled = state === 'working';
}

/** Says on screen which MCP revision the server agreed to over this transport. */
function showRevision(negotiated) {
  const version = typeof negotiated === 'string' && negotiated ? negotiated : 'unknown';
  $('revision').dataset.revision = version;
  $('revision-version').textContent = version;
  $('revision-agreed').textContent = version === PROTOCOL_VERSION
    ? ' (the server agreed)'
    : ` (this page asked for ${PROTOCOL_VERSION})`;
}

// ---------------------------------------------------------------------------------
// The flow trace: one list item per step, each with a status and details.

const trace = {
  records: [],
  // The step still running, if any: an error ends it.
  current: null,

  clear() {
    this.records = [];
    this.current = null;
    $('steps').replaceChildren();
  },

  /** Starts a step; returns a handle to complete it. */
  step(title) {
    const record = { title, status: 'running', lines: [] };
    this.records.push(record);
    const item = this.render(record);
    $('steps').append(item);
    item.scrollIntoView({ block: 'nearest' });
    const update = (status, lines) => {
      record.status = status;
      if (status !== 'running' && this.current === handle) this.current = null;
      record.lines.push(...lines.filter((l) => l !== undefined && l !== null));
      const fresh = this.render(record);
      handle.item.replaceWith(fresh);
      handle.item = fresh;
      return handle;
    };
    const handle = {
      item,
      detail: (...lines) => update(record.status, lines),
      ok: (...lines) => update('ok', lines),
      info: (...lines) => update('info', lines),
      fail: (...lines) => update('failed', lines),
    };
    this.current = handle;
    return handle;
  },

  render(record) {
    const item = el('li', `step step-${record.status}`);
    item.dataset.status = record.status;
    const head = el('div', 'step-head');
    head.append(el('span', 'step-badge', { running: '…', ok: '✓', info: 'i', failed: '✗' }[record.status]));
    head.append(el('span', 'step-title', record.title));
    item.append(head);
    for (const line of record.lines) {
      if (typeof line === 'string') {
        item.append(el('p', 'step-line', line));
      } else if (line.code !== undefined) {
        item.append(el('pre', 'step-code', line.code));
      } else if (line.kv) {
        const list = el('dl', 'step-kv');
        for (const [key, value] of line.kv) {
          list.append(el('dt', null, key), el('dd', null, pretty(value)));
        }
        item.append(list);
      }
    }
    return item;
  },

  snapshot() {
    return this.records.map((r) => ({ title: r.title, status: r.status, lines: r.lines }));
  },

  restore(records) {
    this.clear();
    for (const record of records || []) {
      this.records.push(record);
      $('steps').append(this.render(record));
    }
  },
};

// ---------------------------------------------------------------------------------
// The message log: every JSON-RPC message and stream event.

function logTraffic({ direction, label, body }) {
  const item = el('li', `msg msg-${direction}`);
  const head = el('div', 'msg-head');
  head.append(el('span', 'msg-dir', direction === 'out' ? '→' : '←'));
  head.append(el('span', 'msg-label', label));
  head.append(el('time', 'msg-time', new Date().toLocaleTimeString()));
  item.append(head);
  if (body !== undefined && body !== '') item.append(el('pre', 'msg-body', pretty(body)));
  const log = $('messages');
  log.append(item);
  while (log.children.length > 300) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
  $('messages-empty').hidden = true;
}

// ---------------------------------------------------------------------------------
// Fetch helpers that say what went wrong in words a reader can follow.

async function getJson(url) {
  let response;
  try {
    response = await fetch(url, { credentials: 'omit', cache: 'no-store', headers: { Accept: 'application/json' } });
  } catch (e) {
    return { ok: false, blocked: true, why: `network error or refused by CORS (${e.message})` };
  }
  if (!response.ok) return { ok: false, why: `HTTP ${response.status}` };
  try {
    return { ok: true, json: await response.json() };
  } catch {
    return { ok: false, why: 'not JSON' };
  }
}

/** GET the stream URL without credentials: the 401 names the metadata (RFC 9728 §5.1). */
async function probeUnauthenticated() {
  const controller = new AbortController();
  const response = await fetch(config.sseUrl, {
    credentials: 'omit',
    cache: 'no-store',
    headers: { Accept: 'text/event-stream' },
    signal: controller.signal,
  });
  controller.abort();
  return response;
}

// ---------------------------------------------------------------------------------
// Sign-in, part 1: discovery and the redirect to the authorization server.

async function signIn(requestedScopes) {
  setState('working', 'Signing in…');
  trace.clear();
  try {
    if (requestedScopes && requestedScopes.length) {
      trace.step('Step-up: authorize again for more scope').info(
        `The resource server asked for: ${requestedScopes.join(' ')}`,
        'The current session stays until a new token replaces it.',
      );
    }
    // 1. The resource server's challenge.
    let step = trace.step('Ask the resource server how to authorize');
    const probe = await probeUnauthenticated();
    const header = probe.headers.get('WWW-Authenticate');
    if (probe.status !== 401) throw new FlowError(`GET ${config.sseUrl.pathname} without credentials answered ${probe.status}, not 401`);
    const challenge = header ? bearerChallenge(header) : null;
    step.ok(`GET ${config.sseUrl.pathname} without credentials → 401 Unauthorized`, header ? { code: `WWW-Authenticate: ${header}` } : 'No WWW-Authenticate header: falling back to the well-known locations.');

    // 2. Protected resource metadata.
    step = trace.step('Fetch the protected resource metadata (RFC 9728)');
    const candidates = challenge && challenge.resource_metadata
      ? [challenge.resource_metadata]
      : protectedResourceMetadataUrls(config.sseUrl);
    let prm = null;
    for (const url of candidates) {
      if (new URL(url).origin !== window.location.origin) {
        step.detail(`${url}: refused, not on this resource server's origin`);
        continue;
      }
      const got = await getJson(url);
      step.detail(`GET ${url} → ${got.ok ? '200' : got.why}`);
      if (got.ok) {
        prm = got.json;
        break;
      }
    }
    if (!prm) throw new FlowError('no protected resource metadata found');
    if (typeof prm.resource !== 'string' || !resourceMatches(prm.resource, config.sseUrl)) {
      throw new FlowError(`the metadata's resource ${JSON.stringify(prm.resource)} does not name ${config.sseUrl}: refusing to authorize`);
    }
    const servers = Array.isArray(prm.authorization_servers) ? prm.authorization_servers : [];
    if (!servers.length || typeof servers[0] !== 'string') throw new FlowError('the metadata lists no authorization server');
    step.ok({
      kv: [
        ['resource', prm.resource],
        ['authorization_servers', servers.join(' ')],
        ['scopes_supported', (prm.scopes_supported || []).join(' ') || '(none)'],
      ],
    });

    // 3. Authorization server metadata.
    const issuer = servers[0];
    step = trace.step('Discover the authorization server (RFC 8414, then OpenID Connect)');
    if (!isLoopbackOrHttps(issuer)) throw new FlowError(`the authorization server ${issuer} is neither https nor on this machine`);
    let metadata = null;
    let lastProblem = 'no metadata document found';
    let blocked = 0;
    const urls = authorizationServerMetadataUrls(issuer);
    for (const url of urls) {
      const got = await getJson(url);
      step.detail(`GET ${url} → ${got.ok ? '200' : got.why}`);
      if (got.blocked) blocked += 1;
      if (!got.ok) continue;
      try {
        metadata = checkAuthorizationServerMetadata(got.json, issuer);
        break;
      } catch (e) {
        lastProblem = e.message;
        step.detail(`  refused: ${e.message}`);
      }
    }
    if (!metadata && blocked === urls.length) {
      throw new FlowError(
        `the browser could not read any metadata document from ${new URL(issuer).origin}. A page can only read `
          + `another origin's answer when that server sends Access-Control-Allow-Origin: ${window.location.origin} `
          + '(Dex does for the origins in web.allowedOrigins; a plain static file server such as busybox httpd does not).',
      );
    }
    if (!metadata) throw new FlowError(lastProblem);
    step.ok({
      kv: [
        ['issuer', metadata.issuer],
        ['authorization_endpoint', metadata.authorization_endpoint],
        ['token_endpoint', metadata.token_endpoint],
        ['code_challenge_methods_supported', metadata.code_challenge_methods_supported.join(' ')],
      ],
    });

    // 4. The authorization request.
    step = trace.step('Send the browser to the authorization server');
    const scopes = requestedScopes && requestedScopes.length ? requestedScopes : chooseScopes(challenge, prm);
    const { verifier, challenge: codeChallenge } = await pkcePair();
    const state = randomToken(16);
    const request = {
      clientId: config.clientId,
      redirectUri: config.redirectUri,
      scopes,
      state,
      codeChallenge,
      resource: prm.resource,
    };
    const url = authorizationUrl(metadata, request);
    step.ok(
      'A fresh PKCE verifier (kept until the callback) and its S256 challenge, and a random state.',
      {
        kv: [
          ['client_id', request.clientId],
          ['redirect_uri', request.redirectUri],
          ['scope', scopes.join(' ') || '(omitted)'],
          ['code_challenge', `${codeChallenge} (S256)`],
          ['resource', request.resource],
        ],
      },
      `Leaving for ${new URL(metadata.authorization_endpoint).origin} …`,
    );
    sessionStorage.setItem(
      PENDING_KEY,
      JSON.stringify({
        state,
        verifier,
        issuer: metadata.issuer,
        tokenEndpoint: metadata.token_endpoint,
        clientId: request.clientId,
        redirectUri: request.redirectUri,
        resource: request.resource,
        trace: trace.snapshot(),
      }),
    );
    flow.navigated(url);
    window.location.assign(url);
  } catch (e) {
    fail(e);
  }
}

// ---------------------------------------------------------------------------------
// Sign-in, part 2: back from the authorization server.

async function finishSignIn() {
  setState('working', 'Signing in…');
  const raw = sessionStorage.getItem(PENDING_KEY);
  // One use only, whatever happens next.
  sessionStorage.removeItem(PENDING_KEY);
  let pending = null;
  try {
    pending = raw ? JSON.parse(raw) : null;
  } catch {
    pending = null;
  }
  const search = window.location.search;
  // The code must not stay in the address bar or the history.
  window.history.replaceState(null, '', config.homeUrl);
  trace.restore(pending ? pending.trace : []);
  try {
    let step = trace.step('Read the authorization response');
    const { code, issChecked } = readAuthorizationResponse(search, pending);
    step.ok(
      'state matches the one sent' + (issChecked ? '; iss names the expected issuer (RFC 9207).' : '.'),
      `An authorization code came back (${code.length} characters, single use, not shown).`,
    );

    step = trace.step('Exchange the code for a token');
    const body = await exchangeCode(fetch, pending.tokenEndpoint, {
      code,
      redirectUri: pending.redirectUri,
      clientId: pending.clientId,
      verifier: pending.verifier,
      resource: pending.resource,
    });
    accessToken = body.access_token;
    step.ok(
      `POST ${pending.tokenEndpoint} with the code, the PKCE verifier and no client secret → 200`,
      { kv: Object.entries(describeTokenResponse(body)) },
    );

    await openSession();
  } catch (e) {
    fail(e);
    await resume({ afterError: true });
    return;
  }
  try {
    await connect('signed in');
  } catch (e) {
    fail(e);
  }
}

/** `POST /session` with the bearer token: the resource server answers with its cookie. */
async function openSession() {
  const step = trace.step('Trade the token for a session cookie');
  let response;
  try {
    response = await fetch(config.sessionUrl, {
      method: 'POST',
      headers: { Authorization: `Bearer ${accessToken}` },
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new FlowError(`POST ${config.sessionUrl.pathname} failed: ${e.message}`);
  }
  if (response.status !== 204 && !response.ok) {
    const header = response.headers.get('WWW-Authenticate');
    throw new FlowError(`POST ${config.sessionUrl.pathname} answered ${response.status}`, header ? { code: `WWW-Authenticate: ${header}` } : undefined);
  }
  const visible = document.cookie.split(';').map((c) => c.trim().split('=')[0]).filter(Boolean);
  step.ok(
    `POST ${config.sessionUrl.pathname} with Authorization: Bearer … → ${response.status}`,
    'The resource server set its session cookie: HttpOnly, SameSite=Strict, no longer-lived than the token.',
    `document.cookie shows ${visible.length ? visible.join(', ') : 'nothing'}: scripts cannot read an HttpOnly cookie.`,
  );
}

// ---------------------------------------------------------------------------------
// The MCP session over SSE.

function newClient() {
  const instance = new LegacySseClient({
    sseUrl: config.sseUrl,
    onTraffic: logTraffic,
    onClose: (reason) => streamClosed(instance, reason),
  });
  return instance;
}

/** Opens the stream (or takes one already open), then initializes and lists the tools. */
async function connect(how, opened = null) {
  let step;
  if (opened) {
    client = opened;
  } else {
    step = trace.step('Open the event stream with the cookie');
    client = newClient();
    const endpoint = await client.connect();
    step.ok(
      `new EventSource("${config.sseUrl.pathname}", { withCredentials: true }): no Authorization header, the browser sends the cookie.`,
      `First event "endpoint": ${endpoint.pathname}${endpoint.search}`,
    );
  }

  step = trace.step('MCP handshake: initialize');
  const init = await client.initialize(CLIENT_INFO);
  const server = init.serverInfo || {};
  showRevision(init.protocolVersion);
  step.ok({
    kv: [
      ['protocolVersion', init.protocolVersion],
      ['server', `${server.name || '?'} ${server.version || ''}`.trim()],
    ],
  }, 'Then notifications/initialized.');

  step = trace.step('List the tools');
  const listed = await client.request('tools/list', {});
  const tools = Array.isArray(listed.tools) ? listed.tools : [];
  renderTools(tools);
  step.ok(`${tools.length} tools: ${tools.map((t) => t.name).join(', ')}`);

  let who = null;
  if (tools.some((t) => t.name === 'whoami')) {
    step = trace.step('Ask the server who we are (whoami)');
    try {
      const result = await client.request('tools/call', { name: 'whoami', arguments: {} });
      const claims = result.structuredContent || {};
      const profile = claims.profile || {};
      who = profile.email || profile.preferred_username || profile.name || shorten(claims.subject);
      step.ok({
        kv: [
          ['subject', claims.subject],
          ...(profile.email ? [['email', profile.email]] : []),
          ['audience', [].concat(claims.audience || []).join(' ')],
          ['scopes', [].concat(claims.scopes || []).join(' ') || '(none)'],
        ],
      }, 'Claims as verified by the resource server.');
    } catch (e) {
      step.info(e.message);
    }
  }
  setState('signed-in', who ? `Signed in as ${who}` : `Signed in (${how})`);
}

function streamClosed(instance, reason) {
  // Only the current stream's end matters; closing an old one is part of a replacement.
  if (client !== instance) return;
  client = null;
  if (document.body.dataset.state === 'signed-in') {
    trace.step('The event stream ended').info(reason, 'Sign in again to continue.');
    clearTools();
    setState('signed-out', 'Stream closed');
  }
}

// ---------------------------------------------------------------------------------
// Tools: a form per tool, built from its JSON Schema.

function clearTools() {
  $('tools').replaceChildren();
  $('tools-empty').hidden = false;
}

function renderTools(tools) {
  const container = $('tools');
  container.replaceChildren();
  $('tools-empty').hidden = tools.length > 0;
  for (const tool of tools) container.append(toolCard(tool));
}

function toolCard(tool) {
  const card = el('article', 'tool');
  card.dataset.tool = tool.name;
  card.append(el('h3', 'tool-name', tool.name));
  if (tool.description) card.append(el('p', 'tool-desc', tool.description));

  const form = el('form', 'tool-form');
  const schema = tool.inputSchema || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const readers = [];
  // Required fields first, in the schema's `required` order (JSON objects carry no order).
  const names = [...new Set([...(schema.required || []), ...Object.keys(properties)])].filter((n) => properties[n]);
  for (const name of names) {
    const prop = properties[name];
    const id = `tool-${tool.name}-${name}`;
    const field = el('div', 'field');
    const label = el('label', null, name);
    label.htmlFor = id;
    field.append(label);
    let input;
    if (Array.isArray(prop.enum)) {
      input = el('select');
      for (const option of prop.enum) {
        const opt = el('option', null, option);
        opt.value = String(option);
        input.append(opt);
      }
      readers.push(() => [name, input.value]);
    } else if (prop.type === 'number' || prop.type === 'integer') {
      input = el('input');
      input.type = 'number';
      input.step = prop.type === 'integer' ? '1' : 'any';
      readers.push(() => (input.value === '' ? null : [name, Number(input.value)]));
    } else if (prop.type === 'boolean') {
      input = el('input');
      input.type = 'checkbox';
      readers.push(() => [name, input.checked]);
    } else {
      input = el('input');
      input.type = 'text';
      readers.push(() => (input.value === '' ? null : [name, input.value]));
    }
    input.id = id;
    input.name = name;
    if (required.has(name) && input.type !== 'checkbox') input.required = true;
    if (prop.description && input.tagName === 'INPUT') input.placeholder = prop.description;
    field.append(input);
    form.append(field);
  }
  const button = el('button', 'call', `Call ${tool.name}`);
  button.type = 'submit';
  form.append(button);
  const output = el('div', 'tool-result');
  output.hidden = true;
  card.append(form, output);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const args = Object.fromEntries(readers.map((read) => read()).filter(Boolean));
    button.disabled = true;
    output.hidden = false;
    output.className = 'tool-result pending';
    output.replaceChildren(el('p', null, 'Calling…'));
    try {
      if (!client) throw new RpcError('not connected');
      const result = await client.request('tools/call', { name: tool.name, arguments: args });
      showResult(output, result);
    } catch (e) {
      showCallError(output, e);
    } finally {
      button.disabled = false;
    }
  });
  return card;
}

function showResult(output, result) {
  output.className = result.isError ? 'tool-result error' : 'tool-result ok';
  output.dataset.outcome = result.isError ? 'tool-error' : 'ok';
  const parts = [el('p', 'result-label', result.isError ? 'Tool error (isError: true)' : 'Result')];
  for (const block of result.content || []) {
    parts.push(el('pre', 'result-text', block.type === 'text' ? block.text : pretty(block)));
  }
  output.replaceChildren(...parts);
}

function showCallError(output, error) {
  output.className = 'tool-result error';
  output.dataset.outcome = 'refused';
  const parts = [el('p', 'result-label', 'Refused'), el('pre', 'result-text', error.message)];
  const detail = error.detail || {};
  const challenge = detail.challenge && typeof detail.challenge === 'object' ? detail.challenge : null;
  const rpcData = detail.data && typeof detail.data === 'object' ? detail.data : null;
  const insufficient = (challenge && challenge.error === 'insufficient_scope') || (rpcData && rpcData.error === 'insufficient_scope');
  if (insufficient) {
    const scope = (challenge && challenge.scope) || (rpcData && rpcData.scope) || '';
    parts.push(el('p', null, `The token lacks a scope this tool needs (${scope || 'not named'}). Step-up: sign in again asking for it; the authorization server may refuse.`));
    const again = el('button', 'secondary', 'Sign in again with these scopes');
    again.type = 'button';
    again.addEventListener('click', () => stepUp(scope.split(/\s+/).filter(Boolean)));
    parts.push(again);
  }
  output.replaceChildren(...parts);
}

/** Re-authorizes with more scopes; the current session stays until a new one replaces it. */
function stepUp(scopes) {
  const current = client;
  client = null;
  if (current) current.close('re-authorizing');
  accessToken = null;
  signIn(scopes);
}

// ---------------------------------------------------------------------------------
// Sign-out and resume.

async function endSession({ quiet }) {
  const current = client;
  client = null;
  if (current) current.close('signed out');
  accessToken = null;
  clearTools();
  let status = null;
  try {
    const response = await fetch(config.sessionUrl, { method: 'DELETE', credentials: 'same-origin', cache: 'no-store' });
    status = response.status;
  } catch (e) {
    status = `failed (${e.message})`;
  }
  if (!quiet) {
    trace.step('Sign out').ok(
      'Closed the event stream.',
      `DELETE ${config.sessionUrl.pathname} → ${status}: the server forgot the session and cleared the cookie.`,
      'Dropped the access token from memory.',
    );
  }
  return status;
}

async function signOut() {
  setState('working', 'Signing out…');
  await endSession({ quiet: false });
  setState('signed-out', 'Signed out');
}

/**
 * A session cookie from earlier in this browser may still be valid: on a plain page load,
 * and after a failed sign-in (for example a refused step-up), try the stream with it.
 */
async function resume({ afterError = false } = {}) {
  if (!afterError) {
    setState('working', 'Looking for a session…');
    trace.clear();
  }
  const step = trace.step(afterError ? 'Look for the session from before' : 'Look for a session cookie from an earlier sign-in');
  const opened = newClient();
  try {
    await opened.connect();
  } catch {
    // Why it failed: EventSource does not expose the status, a plain GET does.
    let status = 'no answer';
    try {
      const response = await fetch(config.sseUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'text/event-stream' } });
      status = String(response.status);
      if (response.body) response.body.cancel().catch(() => {});
    } catch (e) {
      status = `failed (${e.message})`;
    }
    step.info(`GET ${config.sseUrl.pathname} with this browser's cookies → ${status}: no session.`, 'Sign in to start one.');
    if (!afterError) setState('signed-out', 'Signed out');
    return;
  }
  const endpoint = opened.endpoint;
  step.ok(
    'The session cookie is still valid: the stream opened without a token (this tab holds none after a reload).',
    `First event "endpoint": ${endpoint.pathname}${endpoint.search}`,
  );
  try {
    await connect('session cookie', opened);
  } catch (e) {
    fail(e);
  }
}

function fail(error) {
  const step = trace.current || trace.step(error instanceof FlowError || error instanceof RpcError ? 'Stopped' : 'Unexpected error');
  step.fail(error.message, ...(error.detail && error.detail.code ? [error.detail] : []));
  if (client) {
    client.close('error');
    client = null;
  }
  accessToken = null;
  setState('error', 'Not signed in');
}

// ---------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------
// The flow as it ran: one line per request and per response, and the same as Mermaid.

const NAMES = { P: 'page', B: 'browser', RS: 'resource server' };

function renderFlow(records) {
  const list = $('flow');
  const name = (id) => NAMES[id] ?? new URL(id).host;
  list.replaceChildren(
    ...records.flatMap((r) => {
      const out = el('li', 'flow-out');
      out.append(el('span', 'flow-who', `${name(r.from)} → ${name(r.to)}`), el('span', 'flow-what', r.request));
      const back = el('li', 'flow-back');
      back.append(el('span', 'flow-who', `${name(r.to)} ⇠ ${name(r.from)}`), el('span', 'flow-what', r.response ?? '(waiting)'));
      return [out, back];
    }),
  );
  list.scrollTop = list.scrollHeight;
  $('flow-empty').hidden = records.length > 0;
  $('flow-mermaid').textContent = toMermaid(records, window.location.origin);
}

function start() {
  flow = installFlowRecorder(renderFlow);
  $('clear-flow').addEventListener('click', () => flow.clear());
  $('client-id').textContent = config.clientId;
  $('redirect-uri').textContent = config.redirectUri;
  $('sign-in').addEventListener('click', () => signIn(null));
  $('sign-out').addEventListener('click', () => signOut());
  $('clear-messages').addEventListener('click', () => {
    $('messages').replaceChildren();
    $('messages-empty').hidden = false;
  });
  const params = new URLSearchParams(window.location.search);
  if (params.has('state') || params.has('code') || params.has('error')) {
    flow.returned(window.location.search);
    finishSignIn();
  } else {
    resume();
  }
}

start();
