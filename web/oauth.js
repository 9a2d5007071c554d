// OAuth 2.0 for a browser public client: discovery from the resource server, PKCE S256,
// `state`, the authorization request and the code exchange.
//
// Nothing here touches the DOM, so the same module runs under Node's test runner.
// Specifications: RFC 6749 (OAuth 2.0), RFC 7636 (PKCE), RFC 6750 §3 and RFC 9110
// §11.6.1 (WWW-Authenticate), RFC 9728 (protected resource metadata), RFC 8414 and
// OpenID Connect Discovery (authorization server metadata), RFC 8707 (resource
// indicators), RFC 9207 (`iss` in the authorization response).

/** An error whose message is safe to show: it never contains a token or a secret. */
export class FlowError extends Error {
  constructor(message, detail) {
    super(message);
    this.name = 'FlowError';
    this.detail = detail;
  }
}

const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses a `WWW-Authenticate` value into challenges (RFC 9110 §11.6.1):
 * `[{scheme, token68, params: {name: value}}]`, parameter names lower-cased.
 * Several challenges, quoted strings with backslash escapes and token68 are handled.
 * Throws a FlowError on malformed input.
 */
export function parseWwwAuthenticate(header) {
  const text = String(header);
  const challenges = [];
  let i = 0;
  const skipSpaces = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i += 1;
  };
  const readToken = () => {
    const start = i;
    while (i < text.length && TOKEN_CHARS.test(text[i])) i += 1;
    return text.slice(start, i);
  };
  const readQuoted = () => {
    // text[i] is the opening quote.
    i += 1;
    let value = '';
    while (i < text.length) {
      const c = text[i];
      if (c === '\\') {
        if (i + 1 >= text.length) break;
        value += text[i + 1];
        i += 2;
      } else if (c === '"') {
        i += 1;
        return value;
      } else {
        value += c;
        i += 1;
      }
    }
    throw new FlowError('malformed WWW-Authenticate header: unterminated quoted string');
  };

  for (;;) {
    skipSpaces();
    while (text[i] === ',') {
      i += 1;
      skipSpaces();
    }
    if (i >= text.length) break;
    const scheme = readToken();
    if (!scheme) throw new FlowError('malformed WWW-Authenticate header: expected an auth scheme');
    const challenge = { scheme, token68: null, params: {} };
    challenges.push(challenge);
    skipSpaces();
    // Parameters, or one token68, until the next challenge.
    for (;;) {
      skipSpaces();
      let afterComma = false;
      while (text[i] === ',') {
        afterComma = true;
        i += 1;
        skipSpaces();
      }
      if (i >= text.length) break;
      const mark = i;
      const name = readToken();
      skipSpaces();
      if (name && text[i] === '=') {
        let j = i + 1;
        while (text[j] === ' ' || text[j] === '\t') j += 1;
        if (text[j] === '"' || (j < text.length && TOKEN_CHARS.test(text[j]))) {
          i = j;
          challenge.params[name.toLowerCase()] = text[i] === '"' ? readQuoted() : readToken();
          continue;
        }
      }
      const token68 = /^[A-Za-z0-9\-._~+/]+=*/.exec(text.slice(mark));
      const noParamsYet = !afterComma && challenge.token68 === null && Object.keys(challenge.params).length === 0;
      if (token68 && noParamsYet && /^[ \t]*(,|$)/.test(text.slice(mark + token68[0].length))) {
        challenge.token68 = token68[0];
        i = mark + token68[0].length;
        break;
      }
      if (!name) throw new FlowError('malformed WWW-Authenticate header: unexpected character');
      // Not a parameter: this word is the next challenge's scheme.
      i = mark;
      break;
    }
  }
  return challenges;
}

/** The first Bearer challenge's parameters, or null. */
export function bearerChallenge(header) {
  if (!header) return null;
  const found = parseWwwAuthenticate(header).find((c) => c.scheme.toLowerCase() === 'bearer');
  return found ? found.params : null;
}

/** Whether `url` may carry OAuth traffic: https, or http on a loopback host. */
export function isLoopbackOrHttps(url) {
  const u = new URL(url);
  if (u.protocol === 'https:') return true;
  if (u.protocol !== 'http:') return false;
  return u.hostname === 'localhost' || u.hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(u.hostname);
}

/**
 * RFC 9728 §3.3 / MCP: the PRM `resource` must name the server being used: same origin,
 * and its path equal to the server URL's path or a prefix of it on a segment boundary.
 */
export function resourceMatches(resource, serverUrl) {
  let r;
  try {
    r = new URL(resource);
  } catch {
    return false;
  }
  const s = new URL(serverUrl);
  if (r.origin !== s.origin || r.hash || r.search) return false;
  const rp = r.pathname.replace(/\/+$/, '');
  const sp = s.pathname.replace(/\/+$/, '');
  return rp === '' || rp === sp || sp.startsWith(`${rp}/`);
}

/** PRM locations for a resource URL (RFC 9728 §3.1): path form first, then the root. */
export function protectedResourceMetadataUrls(serverUrl) {
  const u = new URL(serverUrl);
  const path = u.pathname.replace(/\/+$/, '');
  const urls = [];
  if (path) urls.push(`${u.origin}/.well-known/oauth-protected-resource${path}`);
  urls.push(`${u.origin}/.well-known/oauth-protected-resource`);
  return urls;
}

/**
 * Authorization server metadata locations for an issuer, in the MCP 2025-11-25 order:
 * RFC 8414 insertion, OIDC insertion, OIDC appending (two for an issuer without path).
 */
export function authorizationServerMetadataUrls(issuer) {
  const u = new URL(issuer);
  const path = u.pathname.replace(/\/+$/, '');
  if (!path) {
    return [
      `${u.origin}/.well-known/oauth-authorization-server`,
      `${u.origin}/.well-known/openid-configuration`,
    ];
  }
  return [
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
    `${u.origin}/.well-known/openid-configuration${path}`,
    `${u.origin}${path}/.well-known/openid-configuration`,
  ];
}

function base64url(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** `n` random bytes, base64url without padding. */
export function randomToken(n = 32) {
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

/** RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))). */
export async function s256Challenge(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** A fresh PKCE pair: a 43-character verifier (256 bits) and its S256 challenge. */
export async function pkcePair() {
  const verifier = randomToken(32);
  return { verifier, challenge: await s256Challenge(verifier) };
}

/**
 * Scopes to request (MCP 2025-11-25): the challenge's `scope`, else every scope the PRM
 * lists, else none (the `scope` parameter is then omitted).
 */
export function chooseScopes(challenge, prm) {
  const fromChallenge = challenge && challenge.scope ? challenge.scope.split(/\s+/).filter(Boolean) : [];
  if (fromChallenge.length) return fromChallenge;
  const listed = Array.isArray(prm && prm.scopes_supported) ? prm.scopes_supported : [];
  return [...new Set(listed.filter((s) => typeof s === 'string' && s))];
}

/** Checks discovered metadata and returns it; throws a FlowError naming the problem. */
export function checkAuthorizationServerMetadata(metadata, issuer) {
  if (!metadata || typeof metadata !== 'object') throw new FlowError('metadata is not a JSON object');
  if (metadata.issuer !== issuer) {
    throw new FlowError(`metadata issuer ${JSON.stringify(metadata.issuer)} differs from ${JSON.stringify(issuer)}`);
  }
  for (const field of ['authorization_endpoint', 'token_endpoint']) {
    if (typeof metadata[field] !== 'string') throw new FlowError(`metadata has no ${field}`);
    if (!isLoopbackOrHttps(metadata[field])) {
      throw new FlowError(`${field} must be https or loopback: ${metadata[field]}`);
    }
  }
  const methods = metadata.code_challenge_methods_supported;
  if (!Array.isArray(methods) || !methods.includes('S256')) {
    throw new FlowError('the authorization server does not list S256 in code_challenge_methods_supported');
  }
  const types = metadata.response_types_supported;
  if (Array.isArray(types) && !types.includes('code')) {
    throw new FlowError('the authorization server does not support response_type=code');
  }
  return metadata;
}

/** The authorization request URL (RFC 6749 §4.1.1 + PKCE + RFC 8707 `resource`). */
export function authorizationUrl(metadata, request) {
  const url = new URL(metadata.authorization_endpoint);
  const params = url.searchParams;
  params.set('response_type', 'code');
  params.set('client_id', request.clientId);
  params.set('redirect_uri', request.redirectUri);
  if (request.scopes.length) params.set('scope', request.scopes.join(' '));
  params.set('state', request.state);
  params.set('code_challenge', request.codeChallenge);
  params.set('code_challenge_method', 'S256');
  if (request.resource) params.set('resource', request.resource);
  return url.toString();
}

/**
 * Reads the authorization response from the redirect URI's query and checks it against
 * the pending request: `state` must match, `iss` (RFC 9207) must match when present, and
 * an `error` becomes a FlowError.
 */
export function readAuthorizationResponse(search, pending) {
  const params = new URLSearchParams(search);
  const state = params.get('state');
  if (!pending) throw new FlowError('no sign-in was started in this tab (or it was already completed)');
  if (state !== pending.state) throw new FlowError('the state parameter does not match: the response is refused');
  const iss = params.get('iss');
  if (iss !== null && iss !== pending.issuer) {
    throw new FlowError(`the iss parameter ${JSON.stringify(iss)} is not the expected issuer`);
  }
  const error = params.get('error');
  if (error) {
    const description = params.get('error_description');
    throw new FlowError(`the authorization server answered ${error}${description ? `: ${description}` : ''}`);
  }
  const code = params.get('code');
  if (!code) throw new FlowError('the authorization response has no code');
  return { code, issChecked: iss !== null };
}

/** Fields of a token response that may be shown: every token is left out. */
export function describeTokenResponse(body) {
  const shown = {};
  for (const [key, value] of Object.entries(body)) {
    if (/(^|_)token$/i.test(key)) shown[key] = '(kept in memory, not shown)';
    else shown[key] = value;
  }
  return shown;
}

/**
 * POSTs the code and verifier to the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5,
 * RFC 8707 §2.2). A public client sends its `client_id` in the body and no secret.
 * Returns the parsed token response; throws a FlowError otherwise.
 */
export async function exchangeCode(fetchImpl, tokenEndpoint, request) {
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: request.code,
    redirect_uri: request.redirectUri,
    client_id: request.clientId,
    code_verifier: request.verifier,
  });
  if (request.resource) body.set('resource', request.resource);
  let response;
  try {
    response = await fetchImpl(tokenEndpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body,
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new FlowError(`the token endpoint could not be reached (network error or refused by CORS): ${e.message}`);
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json && typeof json.error === 'string' ? json.error : `HTTP ${response.status}`;
    const description = json && typeof json.error_description === 'string' ? `: ${json.error_description}` : '';
    throw new FlowError(`the token request failed with ${error}${description}`, { status: response.status });
  }
  if (!json || typeof json.access_token !== 'string' || !json.access_token) {
    throw new FlowError('the token response has no access_token');
  }
  if (typeof json.token_type !== 'string' || json.token_type.toLowerCase() !== 'bearer') {
    throw new FlowError(`unexpected token_type ${JSON.stringify(json.token_type)}`);
  }
  return json;
}
