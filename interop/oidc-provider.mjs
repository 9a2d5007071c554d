// An MCP-ready authorization server built on oidc-provider (a certified OpenID Provider),
// used as a third-party peer by the interoperability tests.
//
// What it turns on:
// - open dynamic client registration (RFC 7591) at the `registration_endpoint`;
// - PKCE required for every client (S256 only);
// - resource indicators (RFC 8707): a `resource` granted at the authorization endpoint
//   yields a JWT access token (RFC 9068, `typ: at+jwt`) with `aud` = that resource and
//   the granted `scope`;
// - refresh tokens for every client allowed the `refresh_token` grant (the default for
//   registered clients), rotated on use;
// - a headless login + consent: `GET /interaction/:uid` signs in a fixed user and grants
//   every requested scope, so clients that follow redirects complete without a human.
//
// Usage: node oidc-provider.mjs [PORT]
// Environment:
//   OP_PORT             port to listen on (default 0: an ephemeral port), overridden by argv
//   OP_HOST             host name used in the issuer (default 127.0.0.1)
//   OP_ACCESS_TOKEN_TTL access token lifetime in seconds (default 600)
//   OP_SCOPES           scopes offered to resource servers (default "mcp:tools mcp:admin")
//
//   EXIT_ON_STDIN_EOF   exit when stdin closes (set by the test harness)
//
// Stdout (one line each, for the test harness):
//   READY <issuer>
//   EVENT registration <client_id>
//   EVENT authorization <client_id> resource=<resource> scope=<scope>
//   EVENT grant <grant_type> <client_id> resource=<resource>
//   EVENT error <where> <error> <description>
// Tokens are never printed.

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OP_PORT ?? 0);
const host = process.env.OP_HOST ?? '127.0.0.1';
const accessTokenTtl = Number(process.env.OP_ACCESS_TOKEN_TTL ?? 600);
const resourceScopes = process.env.OP_SCOPES ?? 'mcp:tools mcp:admin';
const ACCOUNT = { sub: 'alice', email: 'alice@example.com' };

function line(...parts) {
  process.stdout.write(`${parts.join(' ')}\n`);
}

function isHttpUrl(value) {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && !url.hash;
  } catch {
    return false;
  }
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: `op-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };

let provider;
const server = http.createServer((req, res) => {
  if (!provider) {
    res.statusCode = 503;
    res.end();
    return;
  }
  if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
    autoInteraction(req, res).catch((err) => {
      line('EVENT', 'error', 'interaction', err.name ?? 'Error', JSON.stringify(err.message ?? String(err)));
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end('interaction failed');
      }
    });
    return;
  }
  provider.callback()(req, res);
});

// Signs the fixed account in, then grants everything the client asked for.
async function autoInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, grantId } = details;
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: ACCOUNT.sub } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const id = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
    return;
  }
  throw new Error(`unexpected prompt ${prompt.name}`);
}

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://${host}:${server.address().port}`;

provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: async (_ctx, id) => (id === ACCOUNT.sub
    ? { accountId: id, claims: async () => ({ sub: id, email: ACCOUNT.email, email_verified: true }) }
    : undefined),
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // The resource scopes are listed too, so that clients may name them in their
  // registration metadata (RFC 7591 `scope`) and see them in `scopes_supported`.
  scopes: ['openid', 'offline_access', 'email', ...resourceScopes.split(' ').filter(Boolean)],
  responseTypes: ['code'],
  pkce: { required: () => true },
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (!isHttpUrl(resourceIndicator)) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: resourceScopes,
          audience: resourceIndicator,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    Grant: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('registration_create.success', (ctx, client) => line('EVENT', 'registration', client.clientId));
provider.on('authorization.success', (ctx) => {
  const { client_id: clientId, resource, scope } = ctx.oidc.params;
  line('EVENT', 'authorization', clientId, `resource=${resource ?? '-'}`, `scope=${JSON.stringify(scope ?? '')}`);
});
provider.on('grant.success', (ctx) => {
  const { grant_type: grantType, resource } = ctx.oidc.params;
  line('EVENT', 'grant', grantType, ctx.oidc.client?.clientId ?? '-', `resource=${resource ?? '-'}`);
});
for (const where of ['authorization.error', 'grant.error', 'registration_create.error', 'server_error', 'discovery.error', 'introspection.error']) {
  provider.on(where, (_ctx, err) => {
    line('EVENT', 'error', where, err.error ?? err.name ?? 'Error', JSON.stringify(err.error_description ?? err.message ?? ''));
  });
}

const shutdown = () => server.close(() => process.exit(0));
// Under a test harness: end with the parent process (its end of our stdin closes).
if (process.env.EXIT_ON_STDIN_EOF) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

line('READY', issuer);
