// End-to-end test of the browser page (web/) in headless Chromium.
//
// Starts dev-idp (Dex behaviour, the real login form) and the resource server from the
// built binaries, opens http://localhost:<rs>/app/, signs in through the login form,
// lists the tools, calls `calculator`, saves a screenshot, signs out, and checks that a
// reload after sign-out cannot reach the stream. Also checks that the authorization
// server's CORS and the resource server's cookie Origin check let in exactly the page's
// origin. Exits non-zero with a message naming the failed step.
//
// Two modes (BROWSER_TEST_MODE): `dex` (default) runs dev-idp as Dex behaves, with the
// resource server configured for Dex (audience = its Dex client id, PRM scopes `openid`
// and the cross-client audience scope, so `admin_status` is refused for lack of scope);
// `mcp-ready` runs dev-idp with everything an MCP client expects (RFC 8414 metadata,
// `resource` as audience, `iss` in the response, scopes mcp:tools and mcp:admin) and the
// resource server with its defaults, so `admin_status` is allowed.
//
// Environment (all optional):
//   BROWSER_TEST_MODE        dex (default) or mcp-ready
//   BROWSER_TEST_IDP_PORT, BROWSER_TEST_RS_PORT  ports (default: free ephemeral ports)
//   BROWSER_TEST_CONFIG      Dex configuration to start from (default: dex-config.yaml)
//   BROWSER_TEST_BIN_DIR     where dev-idp and resource-server are
//                            (default: $CARGO_TARGET_DIR/debug, else target/debug)
//   BROWSER_TEST_RS_COMMAND  program to run instead of <bin dir>/resource-server
//   BROWSER_TEST_OUT         output folder (default: out/browser)
//   CHROMIUM                 the browser (default: /usr/bin/chromium)
//   BROWSER_TEST_HEADED=1    show the browser window
//   BROWSER_TEST_SHOTS=1     save a screenshot after every check (out/browser/steps/)

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const env = process.env;
const OUT = path.resolve(ROOT, env.BROWSER_TEST_OUT || 'out/browser');
const BIN = path.resolve(ROOT, env.BROWSER_TEST_BIN_DIR || path.join(env.CARGO_TARGET_DIR || 'target', 'debug'));
const CONFIG = path.resolve(ROOT, env.BROWSER_TEST_CONFIG || 'dex-config.yaml');
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
const USER = { email: 'alice@example.com', password: 'password' };
const CLIENT_ID = 'mcp-browser';
const RS_CLIENT_ID = 'mcp-resource-server';
const STEP_TIMEOUT = 30_000;
const MODE = env.BROWSER_TEST_MODE || 'dex';
if (!['dex', 'mcp-ready'].includes(MODE)) {
  console.error(`browser test: unknown BROWSER_TEST_MODE ${JSON.stringify(MODE)} (dex or mcp-ready)`);
  process.exit(2);
}
const DEX = MODE === 'dex';

const children = [];
let browser = null;
let page = null;
let passed = 0;
const consoleLines = [];

// ---------------------------------------------------------------------------------
// Small helpers

class StepFailure extends Error {}

function fail(message) {
  throw new StepFailure(message);
}

async function check(name, fn) {
  process.stdout.write(`  ${name} ... `);
  try {
    const note = await fn();
    passed += 1;
    console.log(note ? `ok (${note})` : 'ok');
    if (env.BROWSER_TEST_SHOTS === '1' && page) {
      const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
      await page.screenshot({ path: path.join(OUT, 'steps', `${MODE}-${String(passed).padStart(2, '0')}-${slug}.png`), fullPage: true });
    }
  } catch (error) {
    console.log('FAILED');
    error.step = name;
    throw error;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A plain HTTP request to 127.0.0.1 with a chosen Host header (no redirects followed). */
function request(port, { method = 'GET', pathname = '/', host, headers = {}, body, readBody = true }) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: pathname, headers: { Host: host, ...headers }, timeout: 10_000 },
      (res) => {
        if (!readBody) {
          res.destroy();
          resolve({ status: res.statusCode, headers: res.headers, body: '' });
          return;
        }
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          data += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

function tail(file, lines = 25) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function start(name, command, args) {
  const log = path.join(OUT, `${name}.log`);
  const out = fs.openSync(log, 'w');
  const child = spawn(command, args, {
    cwd: ROOT,
    stdio: ['ignore', out, out],
    env: { ...env, RUST_LOG: env.RUST_LOG || 'info', NO_COLOR: '1' },
    detached: true,
  });
  fs.closeSync(out);
  const entry = { name, child, log, exited: null };
  child.on('exit', (code, signal) => {
    entry.exited = signal ? `signal ${signal}` : `exit code ${code}`;
  });
  child.on('error', (error) => {
    entry.exited = `could not start: ${error.message}`;
  });
  children.push(entry);
  return entry;
}

async function waitUntilServing(entry, port, host, pathname) {
  const deadline = Date.now() + 30_000;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (entry.exited) fail(`${entry.name} stopped (${entry.exited}); its log ends with:\n${tail(entry.log)}`);
    try {
      const res = await request(port, { pathname, host });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  fail(`${entry.name} did not answer GET ${pathname} on port ${port} within 30 s (${last}); log:\n${tail(entry.log)}`);
}

function stopAll() {
  for (const { child } of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}

async function cleanup() {
  if (browser) {
    await browser.close().catch(() => {});
    browser = null;
  }
  stopAll();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && children.some(({ child }) => child.exitCode === null && child.signalCode === null)) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const { child } of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.error(`\nbrowser test: ${signal}, stopping`);
    cleanup().finally(() => process.exit(1));
  });
}

/** The page's flow trace as text, for failure messages. */
async function pageSteps() {
  if (!page) return '';
  try {
    return await page.$$eval('#steps > li', (items) => items.map((li, i) => `    ${i + 1}. [${li.dataset.status}] ${li.innerText.replace(/\s+/g, ' ').trim()}`).join('\n'));
  } catch {
    return '';
  }
}

async function waitForState(state, why) {
  try {
    await page.waitForSelector(`body[data-state="${state}"]`, { timeout: STEP_TIMEOUT });
  } catch {
    const current = await page.evaluate(() => document.body.dataset.state).catch(() => '?');
    fail(`${why}: the page stayed in state "${current}" instead of "${state}" (url ${page.url()})\n  page steps:\n${await pageSteps()}`);
  }
}

/** Rewrites the Dex configuration's standard ports to the ones of this run. */
function writeConfig(idpPort, rsPort) {
  if (!fs.existsSync(CONFIG)) fail(`the Dex configuration ${CONFIG} does not exist`);
  const text = fs
    .readFileSync(CONFIG, 'utf8')
    .replaceAll('localhost:5556', `localhost:${idpPort}`)
    .replaceAll('localhost:3001', `localhost:${rsPort}`);
  const redirect = `http://localhost:${rsPort}/app/callback`;
  for (const needed of [`id: ${CLIENT_ID}`, redirect, `http://localhost:${rsPort}`, `id: ${RS_CLIENT_ID}`]) {
    if (!text.includes(needed)) fail(`${CONFIG} lacks ${JSON.stringify(needed)} (the page's client, its redirect URI, the allowed origin)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcp-browser-test-'));
  const file = path.join(dir, 'dex-config.yaml');
  fs.writeFileSync(file, text);
  return file;
}

// ---------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  for (const bin of ['dev-idp', 'resource-server']) {
    if (!env.BROWSER_TEST_RS_COMMAND || bin !== 'resource-server') {
      if (!fs.existsSync(path.join(BIN, bin))) fail(`${path.join(BIN, bin)} is missing: run cargo build -p dev-idp -p resource-server first`);
    }
  }
  if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install chromium chromium-driver`);

  const idpPort = Number(env.BROWSER_TEST_IDP_PORT) || (await freePort());
  const rsPort = Number(env.BROWSER_TEST_RS_PORT) || (await freePort());
  const issuer = `http://localhost:${idpPort}/dex`;
  const origin = `http://localhost:${rsPort}`;
  const appUrl = `${origin}/app/`;
  const idpHost = `localhost:${idpPort}`;
  const rsHost = `localhost:${rsPort}`;
  console.log(`browser test (${MODE}): dev-idp ${issuer}, resource server ${origin}, page ${appUrl}`);
  // What the client asks for first: the challenge's scope, else the PRM's scopes_supported.
  const expectedScopes = DEX ? ['openid', `audience:server:client_id:${RS_CLIENT_ID}`] : ['mcp:tools'];

  const config = writeConfig(idpPort, rsPort);
  const idp = start(`dev-idp-${MODE}`, path.join(BIN, 'dev-idp'), [
    '--config', config,
    '--listen', `127.0.0.1:${idpPort}`,
    ...(DEX ? [] : ['--mcp-ready']),
  ]);
  const rs = start(`resource-server-${MODE}`, env.BROWSER_TEST_RS_COMMAND || path.join(BIN, 'resource-server'), [
    '--listen', `127.0.0.1:${rsPort}`,
    '--public-url', origin,
    '--issuer', issuer,
    ...(DEX
      ? ['--audience', RS_CLIENT_ID, '--scopes-supported', `openid,audience:server:client_id:${RS_CLIENT_ID}`, '--required-scopes', '']
      : []),
  ]);

  await check('dev-idp serves its OpenID configuration', () => waitUntilServing(idp, idpPort, idpHost, '/dex/.well-known/openid-configuration'));
  await check('the resource server serves its metadata', () => waitUntilServing(rs, rsPort, rsHost, '/.well-known/oauth-protected-resource/sse'));
  await check('the resource server serves the page at /app/', async () => {
    const res = await request(rsPort, { pathname: '/app/', host: rsHost });
    if (res.status !== 200 || !res.body.includes('app.js')) fail(`GET /app/ answered ${res.status}: the resource server does not serve web/`);
    const cb = await request(rsPort, { pathname: '/app/callback?code=x&state=y', host: rsHost });
    if (cb.status !== 200 || !cb.body.includes('app.js')) fail(`GET /app/callback answered ${cb.status}: the redirect URI must serve the page`);
  });

  // --- CORS and Origin rules, seen from outside the browser.
  await check('the authorization server allows CORS for the page origin only', async () => {
    const discovery = '/dex/.well-known/openid-configuration';
    const mine = await request(idpPort, { pathname: discovery, host: idpHost, headers: { Origin: origin } });
    if (mine.headers['access-control-allow-origin'] !== origin) {
      fail(`discovery with Origin ${origin} got Access-Control-Allow-Origin ${JSON.stringify(mine.headers['access-control-allow-origin'])}`);
    }
    for (const other of ['http://evil.example', `http://127.0.0.1:${rsPort}`, `http://localhost:${rsPort + 1}`]) {
      const res = await request(idpPort, { pathname: discovery, host: idpHost, headers: { Origin: other } });
      if (res.headers['access-control-allow-origin']) fail(`Origin ${other} was allowed by CORS (${res.headers['access-control-allow-origin']})`);
    }
    const preflight = await request(idpPort, {
      method: 'OPTIONS',
      pathname: '/dex/token',
      host: idpHost,
      headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    if (preflight.headers['access-control-allow-origin']) fail('a token endpoint preflight from http://evil.example was allowed');
    return 'discovery and token endpoint';
  });

  // --- The browser.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: env.BROWSER_TEST_HEADED !== '1',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on('console', (msg) => consoleLines.push(`[console.${msg.type()}] ${msg.text()}`));
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));

  // Capture the token response so the test can check the token goes nowhere it should not.
  let accessToken = null;
  page.on('response', async (response) => {
    if (response.url() === `${issuer}/token` && response.request().method() === 'POST') {
      try {
        const body = await response.json();
        if (typeof body.access_token === 'string') accessToken = body.access_token;
      } catch {
        // not JSON: the page reports the failure itself
      }
    }
  });

  /** Fills the authorization server's login form and approves, until back on the page. */
  async function logIn() {
    await page.fill('input[name="login"]', USER.email);
    await page.fill('input[name="password"]', USER.password);
    await page.click('button[type="submit"]');
    const backOnPage = (url) => url.origin === origin;
    // Dex (and dev-idp) show an approval page unless skipApprovalScreen is set.
    const toPage = page.waitForURL(backOnPage, { timeout: STEP_TIMEOUT }).then(() => 'page', () => null);
    const toApproval = page.waitForSelector('button[value="approve"]', { timeout: STEP_TIMEOUT }).then(() => 'approval', () => null);
    const next = (await Promise.race([toPage, toApproval])) || (await toPage) || (await toApproval);
    if (!next) fail(`the login did not lead anywhere (url ${page.url()}): ${await page.innerText('body').catch(() => '')}`);
    if (next === 'approval') {
      await page.click('button[value="approve"]');
      await page.waitForURL(backOnPage, { timeout: STEP_TIMEOUT });
      return 'approved the requested scopes';
    }
    return undefined;
  }

  /** Runs `action`, which must lead to the login form; returns the authorization request's URL. */
  async function toLoginForm(action) {
    let authorizeUrl = null;
    const onRequest = (req) => {
      if (!authorizeUrl && req.isNavigationRequest() && req.url().startsWith(`${issuer}/auth`)) authorizeUrl = new URL(req.url());
    };
    page.on('request', onRequest);
    await action();
    try {
      await page.waitForSelector('input[name="password"]', { timeout: STEP_TIMEOUT });
    } catch {
      fail(`no login form appeared (url ${page.url()})\n  page steps:\n${await pageSteps()}`);
    } finally {
      page.off('request', onRequest);
    }
    if (!authorizeUrl) fail(`the browser never requested ${issuer}/auth`);
    return authorizeUrl;
  }

  await check('the page loads signed out', async () => {
    await page.goto(appUrl);
    await waitForState('signed-out', 'first visit');
    const title = await page.title();
    if (!title.includes('MCP')) fail(`unexpected title ${JSON.stringify(title)}`);
  });

  await check('Sign in leads to the authorization server login form', async () => {
    const authorizeUrl = await toLoginForm(() => page.click('#sign-in'));
    const params = authorizeUrl.searchParams;
    const expected = {
      client_id: CLIENT_ID,
      redirect_uri: `${origin}/app/callback`,
      response_type: 'code',
      code_challenge_method: 'S256',
      resource: `${origin}/sse`,
    };
    for (const [key, value] of Object.entries(expected)) {
      if (params.get(key) !== value) fail(`authorization request ${key}=${JSON.stringify(params.get(key))}, expected ${JSON.stringify(value)}`);
    }
    if (!/^[A-Za-z0-9_-]{43}$/.test(params.get('code_challenge') || '')) fail('code_challenge is not a base64url SHA-256');
    if ((params.get('state') || '').length < 16) fail('state is missing or short');
    const scope = (params.get('scope') || '').split(' ');
    if (expectedScopes.some((s) => !scope.includes(s))) fail(`scope ${JSON.stringify(params.get('scope'))} lacks the PRM scopes ${expectedScopes.join(' ')}`);
    return 'PKCE S256, state, resource and the PRM scopes requested';
  });

  await check('log in through the real form', () => logIn());

  await check('back on the page: code exchanged, cookie set, stream opened, tools listed', async () => {
    await waitForState('signed-in', 'after login');
    if (new URL(page.url()).search) fail(`the code stayed in the address bar: ${page.url()}`);
    const tools = await page.$$eval('#tools [data-tool]', (cards) => cards.map((c) => c.dataset.tool));
    for (const tool of ['calculator', 'weather', 'whoami', 'admin_status']) {
      if (!tools.includes(tool)) fail(`tool ${tool} is not listed (listed: ${tools.join(', ')})`);
    }
    const status = await page.textContent('#status-text');
    if (!status.startsWith('Signed in')) fail(`the header says ${JSON.stringify(status)}`);
    const revision = await page.getAttribute('#revision', 'data-revision');
    const revisionText = await page.textContent('#revision');
    if (revision !== '2024-11-05') fail(`the server agreed to revision ${JSON.stringify(revision)} over the legacy transport`);
    if (!revisionText.includes('MCP revision 2024-11-05') || !revisionText.includes('2026-07-28')) {
      fail(`the page does not say which revision it speaks: ${JSON.stringify(revisionText)}`);
    }
    const failedSteps = await page.$$('#steps > li[data-status="failed"], #steps > li[data-status="running"]');
    if (failedSteps.length) fail(`a step failed or never finished:\n${await pageSteps()}`);
    return `${tools.length} tools: ${tools.join(', ')}`;
  });

  let cookie = null;
  await check('the session cookie is HttpOnly, SameSite=Strict and not the token', async () => {
    const cookies = await context.cookies(origin);
    cookie = cookies.find((c) => c.name === 'mcp_session');
    if (!cookie) fail(`no mcp_session cookie (cookies: ${cookies.map((c) => c.name).join(', ') || 'none'})`);
    if (!cookie.httpOnly) fail('the cookie is not HttpOnly');
    if (cookie.sameSite !== 'Strict') fail(`the cookie is SameSite=${cookie.sameSite}`);
    if (!accessToken) fail('the token response was not seen');
    if (cookie.value.includes(accessToken) || accessToken.includes(cookie.value)) fail('the cookie carries the token');
    const visible = await page.evaluate(() => document.cookie);
    if (visible.includes('mcp_session')) fail('document.cookie shows the session cookie');
  });

  await check('the token is kept in memory only (not in the DOM, storage, URL or console)', async () => {
    const places = await page.evaluate(() => ({
      dom: document.documentElement.outerHTML,
      local: JSON.stringify({ ...localStorage }),
      session: JSON.stringify({ ...sessionStorage }),
      url: location.href,
    }));
    for (const [where, text] of Object.entries(places)) {
      if (text.includes(accessToken)) fail(`the access token appears in ${where}`);
    }
    if (consoleLines.some((line) => line.includes(accessToken))) fail('the access token appears in the console');
  });

  await check('calculator: 6 multiply 7 = 42', async () => {
    const card = page.locator('#tools [data-tool="calculator"]');
    await card.locator('select[name="operation"]').selectOption('multiply');
    await card.locator('input[name="a"]').fill('6');
    await card.locator('input[name="b"]').fill('7');
    await card.locator('button[type="submit"]').click();
    const result = card.locator('.tool-result[data-outcome]');
    await result.waitFor({ timeout: STEP_TIMEOUT });
    const outcome = await result.getAttribute('data-outcome');
    const text = await result.innerText();
    if (outcome !== 'ok' || !/=\s*42\b/.test(text)) fail(`unexpected result (${outcome}): ${text}`);
    const logged = await page.$$eval('#messages .msg-label', (labels) => labels.map((l) => l.textContent));
    if (!logged.some((l) => l.includes('tools/call'))) fail('the tools/call message is not in the message log');
    if (!logged.some((l) => l.includes('event: endpoint'))) fail('the endpoint event is not in the message log');
    return text.split('\n').pop();
  });

  await check('the page drew the flow as it ran, tokens as fingerprints only', async () => {
    const drawn = await page.textContent('#flow-mermaid');
    for (const line of [
      'P->>RS: GET /sse (no token',
      'RS-->>P: 401 (WWW-Authenticate Bearer',
      'B->>AS: GET /dex/auth (code_challenge_method=S256',
      'B->>P: GET /app/callback (code, state',
      'P->>AS: POST /dex/token (grant_type=authorization_code',
      'P->>RS: POST /session (Bearer ',
      'tools/call calculator',
    ]) {
      if (!drawn.includes(line)) fail(`${JSON.stringify(line)} is not in the drawn flow:\n${drawn}`);
    }
    if (accessToken && drawn.includes(accessToken)) fail('the drawn flow shows the access token');
    const fp = /POST \/session \(Bearer ([0-9a-f]{8})\)/.exec(drawn)?.[1];
    const expected = createHash('sha256').update(accessToken).digest('hex').slice(0, 8);
    if (fp !== expected) fail(`the session request's fingerprint is ${fp}, not ${expected} (the token's SHA-256)`);
    return `${drawn.split('\n').filter((l) => l.includes('->>')).length} requests drawn`;
  });

  await check('screenshot of the signed-in page', async () => {
    const file = path.join(OUT, DEX ? 'signed-in.png' : `signed-in-${MODE}.png`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: file, fullPage: true });
    return path.relative(ROOT, file);
  });

  await check('calculator: division by zero is shown as a tool error', async () => {
    const card = page.locator('#tools [data-tool="calculator"]');
    await card.locator('select[name="operation"]').selectOption('divide');
    await card.locator('input[name="a"]').fill('1');
    await card.locator('input[name="b"]').fill('0');
    await card.locator('button[type="submit"]').click();
    const result = card.locator('.tool-result[data-outcome="tool-error"]');
    await result.waitFor({ timeout: STEP_TIMEOUT });
    return (await result.innerText()).split('\n').pop();
  });

  await check('admin_status is refused for lack of scope, with a step-up offer', async () => {
    const card = page.locator('#tools [data-tool="admin_status"]');
    await card.locator('button[type="submit"]').click();
    const result = card.locator('.tool-result[data-outcome="refused"]');
    await result.waitFor({ timeout: STEP_TIMEOUT });
    const text = await result.innerText();
    if (!/mcp:admin/.test(text)) fail(`refused without naming the scope mcp:admin: ${text}`);
    if (!(await result.locator('button').count())) fail('no step-up button');
    return 'insufficient scope: mcp:admin';
  });

  if (DEX) {
    await check('step-up against Dex: refused with invalid_scope, shown, and the old session resumes', async () => {
      const card = page.locator('#tools [data-tool="admin_status"]');
      await card.locator('.tool-result button').click();
      // Dex rejects the scope at once and redirects back with error=invalid_scope.
      await page.waitForURL((url) => url.origin === origin && !url.search, { timeout: STEP_TIMEOUT });
      await waitForState('signed-in', 'after the refused step-up');
      const steps = await pageSteps();
      if (!/\[failed\][^\n]*invalid_scope/.test(steps)) fail(`the page does not show the invalid_scope refusal:\n${steps}`);
      if (!/\[ok\][^\n]*session cookie is still valid/.test(steps)) fail(`the page did not resume the previous session:\n${steps}`);
      return 'invalid_scope shown; previous session resumed';
    });
  } else {
    await check('the callback iss was checked (RFC 9207)', async () => {
      const steps = await pageSteps();
      if (!steps.includes('iss names the expected issuer')) fail(`the page did not check iss:\n${steps}`);
    });

    await check('step-up: sign in again with the challenged scopes, then admin_status works', async () => {
      const card = page.locator('#tools [data-tool="admin_status"]');
      const authorizeUrl = await toLoginForm(() => card.locator('.tool-result button').click());
      const scope = (authorizeUrl.searchParams.get('scope') || '').split(' ');
      if (!scope.includes('mcp:admin') || !scope.includes('mcp:tools')) fail(`step-up asked for ${JSON.stringify(scope.join(' '))}`);
      await logIn();
      await waitForState('signed-in', 'after step-up');
      const again = page.locator('#tools [data-tool="admin_status"]');
      await again.locator('button[type="submit"]').click();
      const result = again.locator('.tool-result[data-outcome]');
      await result.waitFor({ timeout: STEP_TIMEOUT });
      const text = await result.innerText();
      if ((await result.getAttribute('data-outcome')) !== 'ok' || !text.includes('"status"')) fail(`unexpected result: ${text}`);
      const cookies = await context.cookies(origin);
      cookie = cookies.find((c) => c.name === 'mcp_session');
      if (!cookie) fail('no session cookie after step-up');
      return `scope ${scope.join(' ')}`;
    });
  }

  await check('a reload before sign-out reconnects with the cookie alone', async () => {
    await page.reload();
    await waitForState('signed-in', 'reload while signed in');
    const steps = await pageSteps();
    if (!/\[ok\][^\n]*session cookie is still valid/.test(steps)) fail(`the page did not reconnect with the cookie:\n${steps}`);
    const tools = await page.$$eval('#tools [data-tool]', (cards) => cards.length);
    if (tools < 4) fail(`only ${tools} tools listed after the reload`);
    return 'stream, initialize and tools/list without a token';
  });

  await check("the resource server refuses the cookie from another Origin", async () => {
    const cookieHeader = `mcp_session=${cookie.value}`;
    const good = await request(rsPort, { pathname: '/sse', host: rsHost, headers: { Cookie: cookieHeader, Origin: origin, Accept: 'text/event-stream' }, readBody: false });
    if (good.status !== 200) fail(`GET /sse with the cookie and the page Origin answered ${good.status}`);
    const evil = await request(rsPort, { pathname: '/sse', host: rsHost, headers: { Cookie: cookieHeader, Origin: 'http://evil.example', Accept: 'text/event-stream' }, readBody: false });
    if (evil.status !== 403) fail(`GET /sse with the cookie from Origin http://evil.example answered ${evil.status}, expected 403`);
    const post = await request(rsPort, {
      method: 'POST',
      pathname: '/session',
      host: rsHost,
      headers: { Cookie: cookieHeader, Origin: 'http://evil.example' },
    });
    if (post.status < 400) fail(`POST /session from Origin http://evil.example answered ${post.status}`);
    const del = await request(rsPort, { method: 'DELETE', pathname: '/session', host: rsHost, headers: { Cookie: cookieHeader, Origin: 'http://evil.example' } });
    if (del.status !== 403) fail(`DELETE /session from Origin http://evil.example answered ${del.status}, expected 403`);
    const cors = await request(rsPort, { method: 'OPTIONS', pathname: '/messages', host: rsHost, headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' } });
    if (cors.headers['access-control-allow-origin']) fail('a CORS preflight to /messages from http://evil.example was allowed');
    return 'GET /sse and DELETE /session 403, no CORS for other origins';
  });

  await check('a page on another origin cannot read the authorization server or the stream', async () => {
    // A real page on another origin (and site): a blank page served on 127.0.0.1.
    const blank = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!doctype html><title>another origin</title>');
    });
    await new Promise((resolve) => blank.listen(0, '127.0.0.1', resolve));
    const foreign = `http://127.0.0.1:${blank.address().port}/`;
    const other = await context.newPage();
    await other.goto(foreign);
    const outcome = await other.evaluate(async ({ issuer: iss, origin: rsOrigin }) => {
      const attempt = async (url, init) => {
        try {
          const res = await fetch(url, init);
          return `read ${res.status}`;
        } catch {
          return 'blocked';
        }
      };
      return {
        discovery: await attempt(`${iss}/.well-known/openid-configuration`),
        token: await attempt(`${iss}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', code: 'x' }) }),
        stream: await attempt(`${rsOrigin}/sse`, { credentials: 'include' }),
        // Control: public metadata is open to every origin (CORS *), so fetches from this page work.
        control: await attempt(`${rsOrigin}/.well-known/oauth-protected-resource/sse`),
      };
    }, { issuer, origin });
    await other.close();
    await new Promise((resolve) => blank.close(resolve));
    const { control, ...refused } = outcome;
    if (control !== 'read 200') fail(`control: the public metadata could not be read from another origin (${control})`);
    for (const [what, result] of Object.entries(refused)) {
      if (result !== 'blocked') fail(`from ${new URL(foreign).origin} the ${what} request was not blocked (${result})`);
    }
    return 'discovery, token and /sse blocked; public metadata readable';
  });

  await check('Sign out ends the session', async () => {
    await page.click('#sign-out');
    await waitForState('signed-out', 'after sign-out');
    const cookies = await context.cookies(origin);
    if (cookies.some((c) => c.name === 'mcp_session')) fail('the mcp_session cookie is still in the browser');
    const tools = await page.$$('#tools [data-tool]');
    if (tools.length) fail('the tools are still shown');
    const replay = await request(rsPort, { pathname: '/sse', host: rsHost, headers: { Cookie: `mcp_session=${cookie.value}`, Accept: 'text/event-stream' }, readBody: false });
    if (replay.status !== 401) fail(`the old cookie value still opens the stream (${replay.status})`);
    return 'cookie cleared; the old cookie value gets 401';
  });

  await check('a reload after sign-out cannot reach the stream', async () => {
    await page.reload();
    await waitForState('signed-out', 'reload after sign-out');
    const probe = await page.evaluate(async () => {
      const status = (await fetch('/sse', { credentials: 'same-origin', headers: { Accept: 'text/event-stream' } })).status;
      const stream = await new Promise((resolve) => {
        const source = new EventSource('/sse', { withCredentials: true });
        const done = (what) => {
          source.close();
          resolve(what);
        };
        source.addEventListener('endpoint', () => done('endpoint event received'));
        source.addEventListener('error', () => done('error'));
        setTimeout(() => done('timeout'), 10000);
      });
      return { status, stream };
    });
    if (probe.status !== 401) fail(`GET /sse after sign-out answered ${probe.status}`);
    if (probe.stream !== 'error') fail(`EventSource after sign-out: ${probe.stream}`);
    const tools = await page.$$('#tools [data-tool]');
    if (tools.length) fail('tools are listed after the reload');
    const unfinished = await page.$$('#steps > li[data-status="running"]');
    if (unfinished.length) fail(`a step never finished:\n${await pageSteps()}`);
    const steps = await pageSteps();
    if (!/\[info\][^\n]*401: no session/.test(steps)) fail(`the page does not say why there is no session:\n${steps}`);
    return 'GET /sse 401, EventSource error';
  });

  if (pageErrors.length) fail(`uncaught errors in the page:\n${pageErrors.join('\n')}`);
}

let exitCode = 0;
try {
  await main();
  console.log(`browser: ${passed} passed, 0 failed`);
} catch (error) {
  exitCode = 1;
  console.error(`\nbrowser test FAILED${error.step ? ` at "${error.step}"` : ''}: ${error.message}`);
  if (!(error instanceof StepFailure) && error.stack) console.error(error.stack);
  if (page) {
    const shot = path.join(OUT, 'failure.png');
    await page.screenshot({ path: shot, fullPage: true }).then(() => console.error(`screenshot: ${path.relative(ROOT, shot)}`)).catch(() => {});
  }
  if (consoleLines.length) console.error(`browser console:\n${consoleLines.slice(-20).join('\n')}`);
  for (const { name, log } of children) console.error(`--- ${name} log (${path.relative(ROOT, log)}), last lines:\n${tail(log, 15)}`);
  console.log(`browser: ${passed} passed, 1 failed`);
} finally {
  await cleanup();
}
process.exit(exitCode);
