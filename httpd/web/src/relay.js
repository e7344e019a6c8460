// One multiplexed WebSocket to relay's /proctor (PROTOCOL.md section 5): register,
// list, subscribe. Events and replies come as JSON text frames, media
// (server.init, server.segment) as MessagePack binary frames. When the socket
// drops (relay restarts with 1012, or dies), it reconnects with a growing
// delay, registers again and resubscribes every sentinel still wanted.
import { decode } from '@msgpack/msgpack';

// Closes that retrying cannot fix: the token or the version was refused, or expired.
export const FATAL_CLOSES = { 3001: 'unauthorized', 3002: 'version mismatch', 3004: 'token expired' };
const PING_MS = 10000; // relay closes a silent proctor after timeouts.idle (30 s)

export class Relay {
  constructor(url, token) {
    this.url = url;
    this.token = token;
    this.ws = null;
    this.state = 'idle'; // connecting | open | reconnecting | refused | closed
    this.wanted = new Set(); // sentinelIds to (re)subscribe
    this.handlers = new Map();
    this.delay = 200;
    this.reject = null;
    this.everOpen = false;
    this.timer = null;
    this.pinger = null;
    this.lastSent = 0;
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
  }

  emit(type, payload) {
    for (const fn of this.handlers.get(type) || []) fn(payload);
  }

  setState(state, detail) {
    this.state = state;
    this.emit('state', { state, ...detail });
  }

  connect() {
    clearTimeout(this.timer);
    this.reject = null;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.setState('refused', { code: 0, reason: `Bad relay address ${this.url}: ${e.message}` });
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    ws.onopen = () => this.send('proctor.register', { token: this.token, version: 1, name: 'web' });
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = typeof ev.data === 'string' ? JSON.parse(ev.data) : decode(new Uint8Array(ev.data));
      } catch (e) {
        console.warn('relay: undecodable message', e);
        return;
      }
      this.dispatch(msg);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
  }

  dispatch(msg) {
    const p = msg.payload || {};
    // Timers of a hidden tab may fire once a minute; relay's server.status comes
    // every second, so the keepalive also rides on what arrives.
    if (this.state === 'open' && Date.now() - this.lastSent > PING_MS) this.send('proctor.ping', {});
    switch (msg.type) {
      case 'server.registration.ack':
        this.everOpen = true;
        this.delay = 200;
        this.proctorId = p.proctorId;
        this.role = p.role || null; // proctor | archivist | operator (docs/protocol.md)
        this.setState('open');
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send('proctor.ping', {}), PING_MS);
        this.send('proctor.list', {});
        if (this.wanted.size) this.send('proctor.subscribe', { sentinelIds: [...this.wanted], startFrom: 'latest' });
        break;
      case 'server.registration.reject':
        this.reject = p.reason || 'refused';
        break;
      default:
        this.emit(msg.type, p);
    }
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    clearInterval(this.pinger);
    this.ws = null;
    if (this.state === 'closed') return;
    if (FATAL_CLOSES[code]) {
      this.setState('refused', { code, reason: this.reject || reason || FATAL_CLOSES[code] });
      return;
    }
    // 1012 (relay restarting), 1006 (killed), 3007 (busy) ...: try again, soon at first.
    const wait = this.delay * (0.75 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, 5000);
    this.setState('reconnecting', { code, reason, retryMs: Math.round(wait) });
    this.timer = setTimeout(() => this.connect(), wait);
  }

  send(type, payload) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type, timestamp: Math.floor(Date.now() / 1000), payload }));
    this.lastSent = Date.now();
    return true;
  }

  get open() {
    return this.state === 'open';
  }

  // startFrom "oldest": relay's memory buffer first (15 to 20 s), then live.
  subscribe(id, startFrom = 'latest') {
    this.wanted.add(id);
    if (this.open) this.send('proctor.subscribe', { sentinelIds: [id], startFrom });
  }

  // Subscribing again is a no-op for relay: a new starting point needs an unsubscribe first.
  resubscribe(id, startFrom) {
    if (this.open) this.send('proctor.unsubscribe', { sentinelIds: [id] });
    this.subscribe(id, startFrom);
  }

  unsubscribe(id) {
    this.wanted.delete(id);
    if (this.open) this.send('proctor.unsubscribe', { sentinelIds: [id] });
  }

  close() {
    this.setState('closed');
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      this.send('proctor.bye', {});
      this.ws.close(1000, 'signed out');
    }
    this.ws = null;
  }
}
