// MCP over the legacy HTTP+SSE transport (protocol version 2024-11-05), from a browser.
//
// `GET /sse` opens an EventSource; its first event, `endpoint`, names the URL to POST
// JSON-RPC messages to (`/messages?sessionId=...`). Each POST is answered `202
// Accepted`; the JSON-RPC reply arrives later on the stream as a `message` event.
// EventSource cannot send an Authorization header, so both the stream and the POSTs are
// authenticated by the resource server's HttpOnly session cookie.

import { FlowError, bearerChallenge } from './oauth.js';

export const PROTOCOL_VERSION = '2024-11-05';

/** A JSON-RPC error answered by the server, or a refused POST. */
export class RpcError extends Error {
  constructor(message, detail) {
    super(message);
    this.name = 'RpcError';
    this.detail = detail;
  }
}

/**
 * One MCP session over `GET /sse` + `POST /messages`.
 *
 * `onTraffic({direction, label, body})` sees every message sent and received, for display.
 * `onClose(reason)` is called once when the stream ends for any reason.
 */
export class LegacySseClient {
  constructor({ sseUrl, onTraffic = () => {}, onClose = () => {}, timeoutMs = 30000 }) {
    this.sseUrl = new URL(sseUrl);
    this.onTraffic = onTraffic;
    this.onClose = onClose;
    this.timeoutMs = timeoutMs;
    this.source = null;
    this.endpoint = null;
    this.nextId = 1;
    this.pending = new Map();
    this.closed = false;
  }

  /** Opens the stream; resolves with the POST endpoint once the `endpoint` event arrives. */
  connect() {
    return new Promise((resolve, reject) => {
      const source = new EventSource(this.sseUrl, { withCredentials: true });
      this.source = source;
      const timer = setTimeout(() => {
        this.close('no endpoint event arrived in time');
        reject(new FlowError('the stream opened but sent no endpoint event'));
      }, this.timeoutMs);

      source.addEventListener('endpoint', (event) => {
        let endpoint;
        try {
          endpoint = new URL(event.data, this.sseUrl);
        } catch {
          endpoint = null;
        }
        // Cookies and messages go to this origin only.
        if (!endpoint || endpoint.origin !== this.sseUrl.origin) {
          clearTimeout(timer);
          this.close('the endpoint event named another origin');
          reject(new FlowError(`refusing an endpoint on another origin: ${event.data}`));
          return;
        }
        this.onTraffic({ direction: 'in', label: 'event: endpoint', body: event.data });
        if (this.endpoint === null) {
          this.endpoint = endpoint;
          clearTimeout(timer);
          resolve(endpoint);
        }
      });

      source.addEventListener('message', (event) => this.receive(event.data));

      source.addEventListener('error', () => {
        // EventSource reconnects by itself after a network error, but not after an HTTP
        // error status (readyState becomes CLOSED). A reconnection would open a new MCP
        // session the server does not know we hold, so any error ends this client.
        if (this.endpoint === null) {
          clearTimeout(timer);
          this.close('the stream could not be opened');
          reject(new FlowError('the stream could not be opened'));
        } else {
          this.close(source.readyState === EventSource.CLOSED ? 'the server closed the stream' : 'the stream was interrupted');
        }
      });
    });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      this.onTraffic({ direction: 'in', label: 'event: message (not JSON)', body: data });
      return;
    }
    const label = message.method
      ? `event: message · ${message.method}`
      : `event: message · reply to #${message.id}`;
    this.onTraffic({ direction: 'in', label, body: message });
    if (message.id === undefined || message.id === null || message.method) return;
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.error) {
      waiter.reject(new RpcError(`${message.error.message} (JSON-RPC error ${message.error.code})`, message.error));
    } else {
      waiter.resolve(message.result);
    }
  }

  async post(message, label) {
    if (this.closed || this.endpoint === null) throw new RpcError('the stream is not open');
    this.onTraffic({ direction: 'out', label: `POST ${this.endpoint.pathname}${this.endpoint.search} · ${label}`, body: message });
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(message),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      throw new RpcError(`the POST failed: ${e.message}`);
    }
    if (response.status !== 202 && !response.ok) {
      const challenge = safeChallenge(response.headers.get('WWW-Authenticate'));
      let text = '';
      try {
        text = (await response.text()).slice(0, 500);
      } catch {
        text = '';
      }
      this.onTraffic({
        direction: 'in',
        label: `HTTP ${response.status} for the POST`,
        body: challenge ? { 'WWW-Authenticate': challenge, body: text } : text,
      });
      throw new RpcError(`the server refused the message: HTTP ${response.status}`, { status: response.status, challenge });
    }
  }

  /** Sends a request and resolves with its result (or rejects with an RpcError). */
  async request(method, params) {
    const id = this.nextId;
    this.nextId += 1;
    const message = { jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) };
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(`no reply to ${method} within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    try {
      await this.post(message, `${method} #${id}`);
    } catch (e) {
      const waiter = this.pending.get(id);
      if (waiter) {
        clearTimeout(waiter.timer);
        this.pending.delete(id);
      }
      throw e;
    }
    return reply;
  }

  /** Sends a notification (no reply expected). */
  async notify(method, params) {
    await this.post({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) }, method);
  }

  /** The MCP handshake: initialize, then notifications/initialized. */
  async initialize(clientInfo) {
    const result = await this.request('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo,
    });
    await this.notify('notifications/initialized');
    return result;
  }

  /** Closes the stream and fails every request still waiting. */
  close(reason = 'closed by the page') {
    if (this.closed) return;
    this.closed = true;
    if (this.source) this.source.close();
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new RpcError(`the stream closed: ${reason}`));
    }
    this.pending.clear();
    this.onClose(reason);
  }
}

function safeChallenge(header) {
  if (!header) return null;
  try {
    return bearerChallenge(header) ?? header;
  } catch {
    return header;
  }
}
