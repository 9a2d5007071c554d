// An MCP server built on the official TypeScript SDK, protected by the SDK's own
// `requireBearerAuth` middleware and advertised by `mcpAuthMetadataRouter` (RFC 9728
// Protected Resource Metadata). Access tokens are JWTs from an external authorization
// server, verified against its JWKS (fetched once and cached by `jose`).
//
// Stateless Streamable HTTP with JSON responses: one transport per request, no session.
// Kept lean because it doubles as the performance baseline.
//
// Usage: node ts-server.mjs [PORT]
// Environment:
//   TS_PORT          port (default 0: ephemeral), overridden by argv
//   TS_HOST          host name in the public URL (default 127.0.0.1)
//   AS_ISSUER        issuer of the authorization server (required)
//   TS_SCOPES        scopes advertised in the PRM (default "mcp:tools")
//   TS_REQUIRED      scopes every request needs (default "mcp:tools")
//   EXIT_ON_STDIN_EOF exit when stdin closes (set by the test harness)
// Stdout: `READY <mcp url>` once listening. Tokens are never printed.

import { createRemoteJWKSet, jwtVerify } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { mcpAuthMetadataRouter, getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { z } from 'zod';

const port = Number(process.argv[2] ?? process.env.TS_PORT ?? 0);
const host = process.env.TS_HOST ?? '127.0.0.1';
const issuer = process.env.AS_ISSUER;
const scopesSupported = (process.env.TS_SCOPES ?? 'mcp:tools').split(/[ ,]+/).filter(Boolean);
const requiredScopes = (process.env.TS_REQUIRED ?? 'mcp:tools').split(/[ ,]+/).filter(Boolean);

function fail(step, err) {
  process.stderr.write(`ts-server: ${step}: ${err?.message ?? err}\n`);
  process.exit(1);
}

if (!issuer) fail('configuration', 'AS_ISSUER is not set');

// RFC 8414 first, then OpenID Connect discovery.
async function fetchAuthorizationServerMetadata(issuerUrl) {
  const url = new URL(issuerUrl);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const candidates = [
    new URL(`/.well-known/oauth-authorization-server${path}`, url.origin),
    new URL(`${path}/.well-known/openid-configuration`, url.origin),
  ];
  for (const candidate of candidates) {
    const res = await fetch(candidate);
    if (res.ok) {
      const metadata = await res.json();
      if (metadata.issuer !== issuerUrl) {
        throw new Error(`metadata at ${candidate} names issuer ${metadata.issuer}, expected ${issuerUrl}`);
      }
      return metadata;
    }
  }
  throw new Error(`no authorization server metadata found for ${issuerUrl}`);
}

const oauthMetadata = await fetchAuthorizationServerMetadata(issuer).catch((err) => fail('authorization server metadata', err));
const jwks = createRemoteJWKSet(new URL(oauthMetadata.jwks_uri), { cacheMaxAge: 10 * 60 * 1000 });

function buildServer() {
  const server = new McpServer({ name: 'ts-sdk-peer', version: '1.0.0' });
  server.registerTool(
    'calculator',
    {
      description: 'Arithmetic on two numbers',
      inputSchema: {
        operation: z.enum(['add', 'subtract', 'multiply', 'divide']),
        a: z.number(),
        b: z.number(),
      },
    },
    async ({ operation, a, b }) => {
      if (operation === 'divide' && b === 0) {
        return { content: [{ type: 'text', text: 'division by zero' }], isError: true };
      }
      const value = { add: a + b, subtract: a - b, multiply: a * b, divide: a / b }[operation];
      return { content: [{ type: 'text', text: String(value) }] };
    },
  );
  server.registerTool(
    'echo',
    { description: 'Echoes its input', inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: 'text', text: message }] }),
  );
  return server;
}

const app = createMcpExpressApp({ host });
const listener = app.listen(port, '127.0.0.1');
await new Promise((resolve, reject) => {
  listener.once('listening', resolve);
  listener.once('error', reject);
}).catch((err) => fail('listen', err));
listener.on('connection', (socket) => socket.setNoDelay(true));

const mcpUrl = new URL(`http://${host}:${listener.address().port}/mcp`);
const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(mcpUrl);

const verifier = {
  async verifyAccessToken(token) {
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer,
        audience: mcpUrl.href,
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      });
      return {
        token,
        clientId: String(payload.client_id ?? payload.azp ?? ''),
        scopes: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
        expiresAt: payload.exp,
        resource: mcpUrl,
        extra: { sub: payload.sub },
      };
    } catch (err) {
      throw new InvalidTokenError(`token rejected (${err.code ?? 'invalid'})`);
    }
  },
};

app.use(mcpAuthMetadataRouter({
  oauthMetadata,
  resourceServerUrl: mcpUrl,
  scopesSupported,
  resourceName: 'TypeScript SDK peer',
}));

const auth = requireBearerAuth({ verifier, requiredScopes, resourceMetadataUrl, expectedResource: mcpUrl });

app.post('/mcp', auth, async (req, res) => {
  const server = buildServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    transport.close();
    server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (err) {
    process.stderr.write(`ts-server: request failed: ${err?.message ?? err}\n`);
    if (!res.headersSent) {
      res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  }
});

const methodNotAllowed = (_req, res) => {
  res.status(405).set('Allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
};
app.get('/mcp', auth, methodNotAllowed);
app.delete('/mcp', auth, methodNotAllowed);

const shutdown = () => listener.close(() => process.exit(0));
// Under a test harness: end with the parent process (its end of our stdin closes).
if (process.env.EXIT_ON_STDIN_EOF) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

process.stdout.write(`READY ${mcpUrl.href}\n`);
