// The official TypeScript SDK's Streamable HTTP client, keeping one session across an
// instance failure behind a load balancer.
//
// Usage: MCP_TOKEN=<bearer> node ts-cluster-client.mjs <mcp-url> <calls-before> <calls-after>
// It connects (initialize), makes <calls-before> tool calls, prints {"phase":"ready",...}
// and waits for a line on stdin (meanwhile the caller kills an instance), then makes
// <calls-after> more calls on the same session and prints one result line:
// {"ok":true,...} or {"ok":false,"step":...,"error":...} (exit code 1).
// The token is read from the environment and never printed.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createInterface } from 'node:readline';

const [serverUrl, before = '3', after = '6'] = process.argv.slice(2);
const token = process.env.MCP_TOKEN;
let step = 'arguments';

function finish(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
}

if (!serverUrl || !token) finish({ ok: false, step, error: 'usage: MCP_TOKEN=… ts-cluster-client.mjs <mcp-url> [before] [after]' });

async function calls(client, n, offset) {
  for (let i = 0; i < n; i += 1) {
    const a = offset + i;
    const result = await client.callTool({ name: 'calculator', arguments: { operation: 'add', a, b: 1 } });
    if (result.structuredContent?.result !== a + 1) {
      throw new Error(`calculator answered ${JSON.stringify(result.structuredContent)} for ${a} + 1`);
    }
  }
}

try {
  step = 'connect (initialize)';
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    reconnectionOptions: { initialReconnectionDelay: 100, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1.5, maxRetries: 20 },
  });
  const client = new Client({ name: 'ts-cluster-client', version: '0.0.0' });
  await client.connect(transport);
  const sessionId = transport.sessionId;
  step = 'calls before the failure';
  await calls(client, Number(before), 0);
  process.stdout.write(`${JSON.stringify({ phase: 'ready', session: Boolean(sessionId) })}\n`);
  step = 'wait for the caller';
  const lines = createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  lines.close();
  step = 'calls after the failure';
  await calls(client, Number(after), 100);
  const sameSession = transport.sessionId === sessionId;
  await client.close();
  finish({ ok: sameSession, step, same_session: sameSession, calls: Number(before) + Number(after) });
} catch (error) {
  finish({ ok: false, step, error: String(error?.message ?? error) });
}
