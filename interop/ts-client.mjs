// An MCP client built on the official TypeScript SDK: Streamable HTTP with the SDK's own
// OAuth machinery (discovery, dynamic registration, PKCE, resource indicators). The
// OAuthClientProvider below plays the user agent: it GETs the authorization URL and
// follows the redirects by hand (with a cookie jar) until the redirect URI, so it
// completes against an authorization server that approves without a human.
//
// Usage: node ts-client.mjs <mcp-url> [--tool NAME] [--args JSON]
//   default tool: calculator {"operation":"add","a":2,"b":3}
// Stdout: one JSON line. On success {"ok":true,...}; on failure
//   {"ok":false,"peer":"ts-client","step":"<step>","error":"<message>"} and exit code 1.
// Tokens are never printed.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { randomBytes } from 'node:crypto';

const argv = process.argv.slice(2);
const serverUrl = argv[0];
let toolName = 'calculator';
let toolArgs = { operation: 'add', a: 2, b: 3 };
for (let i = 1; i < argv.length; i += 2) {
  if (argv[i] === '--tool') toolName = argv[i + 1];
  else if (argv[i] === '--args') toolArgs = JSON.parse(argv[i + 1]);
  else finish({ ok: false, step: 'arguments', error: `unknown argument ${argv[i]}` });
}

let step = 'arguments';
const report = { ok: true, peer: 'ts-client', server: serverUrl, steps: [] };

function finish(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

function enter(name) {
  step = name;
  report.steps.push(name);
}

if (!serverUrl) finish({ ok: false, peer: 'ts-client', step, error: 'usage: ts-client.mjs <mcp-url>' });

// A minimal cookie jar: name/value pairs per host, enough for an authorization server's
// interaction cookies across its own redirects.
class CookieJar {
  #byHost = new Map();

  store(url, response) {
    const host = new URL(url).host;
    const jar = this.#byHost.get(host) ?? new Map();
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [k, v] = a.split('=').map((s) => s.trim().toLowerCase());
        return (k === 'max-age' && Number(v) <= 0) || (k === 'expires' && Date.parse(v) < Date.now());
      });
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    this.#byHost.set(host, jar);
  }

  header(url) {
    const jar = this.#byHost.get(new URL(url).host);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

class HeadlessProvider {
  #redirectUrl = 'http://127.0.0.1:53682/callback';
  #clientInformation;
  #tokens;
  #codeVerifier;
  #state;
  callback;

  get redirectUrl() {
    return this.#redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: 'TypeScript SDK headless client',
      redirect_uris: [this.#redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this.#state = randomBytes(16).toString('base64url');
    return this.#state;
  }

  clientInformation() {
    return this.#clientInformation;
  }

  saveClientInformation(info) {
    this.#clientInformation = info;
    report.registered_client_id = info.client_id;
  }

  tokens() {
    return this.#tokens;
  }

  saveTokens(tokens) {
    this.#tokens = tokens;
    report.token_type = tokens.token_type;
    report.granted_scope = tokens.scope;
    report.refresh_token_issued = Boolean(tokens.refresh_token);
  }

  saveCodeVerifier(verifier) {
    this.#codeVerifier = verifier;
  }

  codeVerifier() {
    if (!this.#codeVerifier) throw new Error('no PKCE code verifier saved');
    return this.#codeVerifier;
  }

  async redirectToAuthorization(authorizationUrl) {
    enter('authorize (follow the authorization redirects)');
    const params = authorizationUrl.searchParams;
    report.authorization_request = {
      endpoint: `${authorizationUrl.origin}${authorizationUrl.pathname}`,
      resource: params.get('resource'),
      scope: params.get('scope'),
      code_challenge_method: params.get('code_challenge_method'),
    };
    const jar = new CookieJar();
    let url = authorizationUrl.href;
    for (let hop = 0; hop < 20; hop += 1) {
      const cookie = jar.header(url);
      const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      jar.store(url, res);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) {
        const body = (await res.text()).slice(0, 300);
        throw new Error(`${url} answered ${res.status} without a redirect: ${body}`);
      }
      await res.body?.cancel();
      const next = new URL(location, url);
      if (`${next.origin}${next.pathname}` === this.#redirectUrl) {
        const q = next.searchParams;
        if (q.get('error')) {
          throw new Error(`authorization server returned error=${q.get('error')} ${q.get('error_description') ?? ''}`);
        }
        if (q.get('state') !== this.#state) throw new Error('state in the callback does not match');
        if (!q.get('code')) throw new Error('callback carries no code');
        report.callback_iss = q.get('iss');
        this.callback = q.get('code');
        return;
      }
      url = next.href;
    }
    throw new Error('too many redirects');
  }
}

async function connect(provider) {
  const client = new Client({ name: 'ts-sdk-headless-client', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  await client.connect(transport);
  return { client, transport };
}

const provider = new HeadlessProvider();
try {
  enter('connect without a token (expect 401 and discovery)');
  let session;
  try {
    session = await connect(provider);
    throw new Error('the server accepted a request without a token');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  if (!provider.callback) throw new Error('authorization did not reach the redirect URI');

  enter('token request (finishAuth with the authorization code)');
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  await transport.finishAuth(provider.callback);
  await transport.close();

  enter('connect with the token (initialize)');
  session = await connect(provider);
  report.server_info = session.client.getServerVersion();

  enter('tools/list');
  const { tools } = await session.client.listTools();
  report.tools = tools.map((t) => t.name);
  if (!report.tools.includes(toolName)) throw new Error(`tool ${toolName} is not listed`);

  enter(`tools/call ${toolName}`);
  const result = await session.client.callTool({ name: toolName, arguments: toolArgs });
  report.call = {
    tool: toolName,
    isError: Boolean(result.isError),
    text: (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n'),
  };
  await session.client.close();
  finish(report);
} catch (err) {
  finish({ ...report, ok: false, step, error: String(err?.message ?? err) });
}
