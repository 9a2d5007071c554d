// Unit tests of the page's flow drawing (web/flow.js), run by Node's test runner.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import { describeRequest, describeResponse, fingerprint, toMermaid } from '../../../web/flow.js';

const PAGE = 'http://localhost:3001';

test('a fingerprint is the first 8 hex digits of the SHA-256', async () => {
  const expected = createHash('sha256').update('tok').digest('hex').slice(0, 8);
  assert.equal(await fingerprint('tok'), expected);
});

test('requests name what mattered and never a secret', () => {
  const sse = describeRequest('/sse', { credentials: 'same-origin' }, PAGE);
  assert.deepEqual(sse, { to: 'RS', request: 'GET /sse (no token, cookie if any)', wellKnown: false });
  const prm = describeRequest(`${PAGE}/.well-known/oauth-protected-resource/sse`, { credentials: 'omit' }, PAGE);
  assert.equal(prm.request, 'GET /.well-known/oauth-protected-resource/sse');
  assert.equal(prm.wellKnown, true);
  const token = describeRequest(
    'http://localhost:5556/dex/token?x=SECRET',
    {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'SECRETCODE', code_verifier: 'SECRETV', resource: `${PAGE}/sse` }),
    },
    PAGE,
  );
  assert.equal(token.to, 'http://localhost:5556');
  assert.equal(token.request, `POST /dex/token (grant_type=authorization_code, resource=${PAGE}/sse, code_verifier)`);
  const rpc = describeRequest(
    '/messages?sessionId=abc',
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'calculator' } }), credentials: 'same-origin' },
    PAGE,
  );
  assert.equal(rpc.request, 'POST /messages (tools/call calculator, no token, cookie if any)');
  const session = describeRequest('/session', { method: 'POST', headers: { Authorization: 'Bearer SECRETTOKEN' } }, PAGE, '0a1b2c3d');
  assert.equal(session.request, 'POST /session (Bearer 0a1b2c3d)');
  for (const r of [sse, prm, token, rpc, session]) assert.ok(!r.request.includes('SECRET'), r.request);
});

test('responses name the challenge', () => {
  const h = new Headers({
    'WWW-Authenticate': 'Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata="http://x/.well-known/oauth-protected-resource/sse"',
  });
  assert.equal(describeResponse(403, h), '403 (WWW-Authenticate Bearer error=insufficient_scope scope=mcp:admin resource_metadata)'.replace(' scope=mcp:admin resource_metadata', ' resource_metadata scope=mcp:admin'));
  assert.equal(describeResponse(200, new Headers({ 'Content-Type': 'text/event-stream' })), '200 (text/event-stream)');
  assert.equal(describeResponse(204, new Headers()), '204');
});

test('the Mermaid text declares each role once and draws every exchange', () => {
  const records = [
    { from: 'P', to: 'RS', request: 'GET /sse (no token)', wellKnown: false, response: '401 (WWW-Authenticate Bearer resource_metadata)' },
    { from: 'P', to: 'http://localhost:5556', request: 'GET /.well-known/openid-configuration', wellKnown: true, response: '200' },
    { from: 'B', to: 'http://localhost:5556', request: 'GET /dex/auth (code_challenge_method=S256)', wellKnown: false, response: 'login' },
    { from: 'P', to: 'http://localhost:5556', request: 'POST /dex/token; x#y', wellKnown: false, response: null },
  ];
  const text = toMermaid(records, PAGE);
  assert.equal(
    text,
    [
      'sequenceDiagram',
      '    autonumber',
      '    participant P as page (this tab)',
      '    participant B as browser',
      '    participant RS as resource server (localhost:3001)',
      '    participant AS as authorization server (localhost:5556)',
      '    P->>RS: GET /sse (no token)',
      '    RS-->>P: 401 (WWW-Authenticate Bearer resource_metadata)',
      '    P->>AS: GET /.well-known/openid-configuration',
      '    AS-->>P: 200',
      '    B->>AS: GET /dex/auth (code_challenge_method=S256)',
      '    AS-->>B: login',
      '    P->>AS: POST /dex/token#59; x#35;y',
      '    AS--xP: no response',
      '',
    ].join('\n'),
  );
});
