// Unit tests of the page's OAuth module (web/oauth.js), run by Node's test runner.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

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
  parseWwwAuthenticate,
  pkcePair,
  protectedResourceMetadataUrls,
  readAuthorizationResponse,
  resourceMatches,
  s256Challenge,
} from '../../../web/oauth.js';

test('parses a Bearer challenge with quoted strings and escapes', () => {
  const header = 'Bearer error="invalid_token", error_description="say \\"hi\\", ok", '
    + 'scope="openid mcp:tools", resource_metadata="http://localhost:3001/.well-known/oauth-protected-resource/sse"';
  const params = bearerChallenge(header);
  assert.equal(params.error, 'invalid_token');
  assert.equal(params.error_description, 'say "hi", ok');
  assert.equal(params.scope, 'openid mcp:tools');
  assert.equal(params.resource_metadata, 'http://localhost:3001/.well-known/oauth-protected-resource/sse');
});

test('parses several challenges, token68 and unquoted values', () => {
  const challenges = parseWwwAuthenticate('Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Negotiate, Bearer Realm=api, scope="a"');
  assert.deepEqual(challenges.map((c) => c.scheme), ['Basic', 'Negotiate', 'Bearer']);
  assert.equal(challenges[0].token68, 'YWxhZGRpbjpvcGVuc2VzYW1l==');
  assert.equal(challenges[1].token68, null);
  assert.deepEqual(challenges[2].params, { realm: 'api', scope: 'a' });
  assert.equal(bearerChallenge('Basic realm="x"'), null);
  assert.deepEqual(bearerChallenge('bearer'), {});
});

test('refuses malformed challenges with a FlowError', () => {
  assert.throws(() => parseWwwAuthenticate('Bearer scope="open'), FlowError);
  assert.throws(() => parseWwwAuthenticate('"quoted"'), FlowError);
});

test('matches the PRM resource on origin and path segments', () => {
  assert.ok(resourceMatches('http://localhost:3001/sse', 'http://localhost:3001/sse'));
  assert.ok(resourceMatches('http://localhost:3001', 'http://localhost:3001/sse'));
  assert.ok(resourceMatches('http://localhost:3001/', 'http://localhost:3001/sse'));
  assert.ok(resourceMatches('http://localhost:3001/api', 'http://localhost:3001/api/sse'));
  assert.ok(!resourceMatches('http://localhost:3001/ss', 'http://localhost:3001/sse'));
  assert.ok(!resourceMatches('http://localhost:3001/mcp', 'http://localhost:3001/sse'));
  assert.ok(!resourceMatches('http://127.0.0.1:3001/sse', 'http://localhost:3001/sse'));
  assert.ok(!resourceMatches('http://localhost:3002/sse', 'http://localhost:3001/sse'));
  assert.ok(!resourceMatches('https://evil.example/sse', 'http://localhost:3001/sse'));
  assert.ok(!resourceMatches('not a url', 'http://localhost:3001/sse'));
});

test('builds the well-known URLs in the specified order', () => {
  assert.deepEqual(protectedResourceMetadataUrls('http://localhost:3001/sse'), [
    'http://localhost:3001/.well-known/oauth-protected-resource/sse',
    'http://localhost:3001/.well-known/oauth-protected-resource',
  ]);
  assert.deepEqual(authorizationServerMetadataUrls('http://localhost:5556/dex'), [
    'http://localhost:5556/.well-known/oauth-authorization-server/dex',
    'http://localhost:5556/.well-known/openid-configuration/dex',
    'http://localhost:5556/dex/.well-known/openid-configuration',
  ]);
  assert.deepEqual(authorizationServerMetadataUrls('http://localhost:5558'), [
    'http://localhost:5558/.well-known/oauth-authorization-server',
    'http://localhost:5558/.well-known/openid-configuration',
  ]);
});

test('PKCE S256 follows RFC 7636 (appendix B vector) and verifiers are fresh', async () => {
  assert.equal(
    await s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'),
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  );
  const a = await pkcePair();
  const b = await pkcePair();
  assert.notEqual(a.verifier, b.verifier);
  assert.match(a.verifier, /^[A-Za-z0-9_-]{43}$/);
  const expected = createHash('sha256').update(a.verifier).digest('base64url');
  assert.equal(a.challenge, expected);
});

test('scopes come from the challenge, else from the PRM, else none', () => {
  const prm = { scopes_supported: ['openid', 'audience:server:client_id:mcp-resource-server', 'openid'] };
  assert.deepEqual(chooseScopes({ scope: 'mcp:admin  mcp:tools' }, prm), ['mcp:admin', 'mcp:tools']);
  assert.deepEqual(chooseScopes({}, prm), ['openid', 'audience:server:client_id:mcp-resource-server']);
  assert.deepEqual(chooseScopes(null, {}), []);
});

test('checks the authorization server metadata', () => {
  const good = {
    issuer: 'http://localhost:5556/dex',
    authorization_endpoint: 'http://localhost:5556/dex/auth',
    token_endpoint: 'http://localhost:5556/dex/token',
    code_challenge_methods_supported: ['S256', 'plain'],
    response_types_supported: ['code'],
  };
  assert.equal(checkAuthorizationServerMetadata(good, 'http://localhost:5556/dex'), good);
  assert.throws(() => checkAuthorizationServerMetadata(good, 'http://localhost:5558'), /issuer/);
  assert.throws(
    () => checkAuthorizationServerMetadata({ ...good, code_challenge_methods_supported: ['plain'] }, good.issuer),
    /S256/,
  );
  assert.throws(
    () => checkAuthorizationServerMetadata({ ...good, code_challenge_methods_supported: undefined }, good.issuer),
    /S256/,
  );
  assert.throws(
    () => checkAuthorizationServerMetadata({ ...good, token_endpoint: 'http://as.example/token' }, good.issuer),
    /https or loopback/,
  );
  assert.ok(isLoopbackOrHttps('http://127.0.0.1:9/x'));
  assert.ok(isLoopbackOrHttps('http://[::1]:9/x'));
  assert.ok(!isLoopbackOrHttps('http://localhost.evil.example/x'));
});

test('the authorization URL carries PKCE, state and resource', () => {
  const url = new URL(authorizationUrl({ authorization_endpoint: 'http://localhost:5556/dex/auth?x=1' }, {
    clientId: 'mcp-browser',
    redirectUri: 'http://localhost:3001/app/callback',
    scopes: ['openid', 'audience:server:client_id:mcp-resource-server'],
    state: 'st',
    codeChallenge: 'ch',
    resource: 'http://localhost:3001/sse',
  }));
  const p = url.searchParams;
  assert.equal(p.get('x'), '1');
  assert.equal(p.get('response_type'), 'code');
  assert.equal(p.get('client_id'), 'mcp-browser');
  assert.equal(p.get('redirect_uri'), 'http://localhost:3001/app/callback');
  assert.equal(p.get('scope'), 'openid audience:server:client_id:mcp-resource-server');
  assert.equal(p.get('state'), 'st');
  assert.equal(p.get('code_challenge'), 'ch');
  assert.equal(p.get('code_challenge_method'), 'S256');
  assert.equal(p.get('resource'), 'http://localhost:3001/sse');
  const none = new URL(authorizationUrl({ authorization_endpoint: 'https://as/auth' }, {
    clientId: 'c', redirectUri: 'http://localhost/cb', scopes: [], state: 's', codeChallenge: 'c',
  }));
  assert.equal(none.searchParams.has('scope'), false);
  assert.equal(none.searchParams.has('resource'), false);
});

test('the authorization response is checked against the pending request', () => {
  const pending = { state: 'abc', issuer: 'http://localhost:5556/dex' };
  assert.deepEqual(readAuthorizationResponse('?code=xyz&state=abc', pending), { code: 'xyz', issChecked: false });
  assert.deepEqual(
    readAuthorizationResponse('?code=xyz&state=abc&iss=http%3A%2F%2Flocalhost%3A5556%2Fdex', pending),
    { code: 'xyz', issChecked: true },
  );
  assert.throws(() => readAuthorizationResponse('?code=xyz&state=other', pending), /state/);
  assert.throws(() => readAuthorizationResponse('?code=xyz', pending), /state/);
  assert.throws(() => readAuthorizationResponse('?code=xyz&state=abc&iss=http%3A%2F%2Fevil', pending), /iss/);
  assert.throws(() => readAuthorizationResponse('?code=xyz&state=abc', null), /no sign-in/);
  assert.throws(
    () => readAuthorizationResponse('?error=access_denied&error_description=no&state=abc', pending),
    /access_denied: no/,
  );
  assert.throws(() => readAuthorizationResponse('?state=abc', pending), /no code/);
});

test('token responses are shown without their tokens', () => {
  const shown = describeTokenResponse({
    access_token: 'secret-a', id_token: 'secret-i', refresh_token: 'secret-r', token_type: 'bearer', expires_in: 60,
  });
  assert.equal(JSON.stringify(shown).includes('secret'), false);
  assert.equal(shown.expires_in, 60);
  assert.equal(shown.token_type, 'bearer');
});

test('the code exchange posts a public client request and checks the answer', async () => {
  const seen = [];
  const fakeFetch = (body, status = 200) => async (url, init) => {
    seen.push({ url, init });
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  };
  const request = {
    code: 'c0de', redirectUri: 'http://localhost:3001/app/callback', clientId: 'mcp-browser', verifier: 'v', resource: 'http://localhost:3001/sse',
  };
  const ok = await exchangeCode(fakeFetch({ access_token: 'at', token_type: 'Bearer' }), 'http://as/token', request);
  assert.equal(ok.access_token, 'at');
  const form = new URLSearchParams(seen[0].init.body);
  assert.equal(seen[0].init.method, 'POST');
  assert.equal(seen[0].init.credentials, 'omit');
  assert.deepEqual(Object.fromEntries(form), {
    grant_type: 'authorization_code',
    code: 'c0de',
    redirect_uri: 'http://localhost:3001/app/callback',
    client_id: 'mcp-browser',
    code_verifier: 'v',
    resource: 'http://localhost:3001/sse',
  });
  await assert.rejects(
    exchangeCode(fakeFetch({ error: 'invalid_grant', error_description: 'bad code' }, 400), 'http://as/token', request),
    /invalid_grant: bad code/,
  );
  await assert.rejects(exchangeCode(fakeFetch({ token_type: 'Bearer' }), 'http://as/token', request), /no access_token/);
  await assert.rejects(exchangeCode(fakeFetch({ access_token: 'at', token_type: 'mac' }), 'http://as/token', request), /token_type/);
  await assert.rejects(
    exchangeCode(async () => { throw new TypeError('Failed to fetch'); }, 'http://as/token', request),
    /CORS/,
  );
});
