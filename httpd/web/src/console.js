// The operator console's WebSocket: /api/ws on the page's own origin
// (PROTOCOL.md section 7). operator.auth first: success means the token has
// the operator role; a refusal (3001) means it has not, and the page shows no
// operator view. Requests are answered by server.result { ref: <request
// type>, ... }; pushes (server.status, server.metrics, server.console ...)
// go to whoever listens. When the socket drops (1012 at an httpd restart,
// 1001 at a shutdown, or killed) it reconnects with a growing delay, signs in
// again and asks for the same log lines; requests that were waiting are
// answered with an error, since their answers left with the old connection.

export const CONSOLE_FATAL = { 3001: 'unauthorized', 3002: 'version mismatch', 3004: 'token revoked or expired' };
const PING_MS = 10000; // httpd closes a silent operator after timeouts.idle (30 s)
const MAX_DELAY_MS = 5000;

export function consoleUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`;
}

// Which waiting request a server.result answers. Answers of one type come in
// the order the server finished them, not the order asked (a stop of archive
// may end before a restart of relay asked earlier): stage.set answers name
// their stage, and so do vigild's refusals ("restart relay: ..."); the rest go
// to the oldest request of that type.
function resultKey(ref, p) {
  if (ref !== 'operator.stage.set') return null;
  if (p.stage) return p.stage;
  const m = /^(?:start|stop|restart|kill) (\w+):/.exec(p.error || '');
  return m ? m[1] : null;
}

export class Console {
  constructor(url, token) {
    this.url = url;
    this.token = token;
    this.ws = null;
    this.state = 'idle'; // connecting | open | reconnecting | refused | closed
    this.handlers = new Map();
    this.delay = 200;
    this.everOpen = false;
    this.reject = null;
    this.pending = []; // { ref, key, resolve }
    this.follow = null; // the operator.console payload to send again after a reconnect
    this.sent = []; // the last request types sent, for the tests
    this.timer = null;
    this.pinger = null;
    this.lastClose = null;
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
  }

  emit(type, payload) {
    for (const fn of this.handlers.get(type) || []) fn(payload);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit('state', { state, ...detail });
  }

  connect() {
    clearTimeout(this.timer);
    this.reject = null;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    ws.onopen = () => this.send('operator.auth', { token: this.token, version: 1 });
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return; // the console sends JSON text frames only
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        console.warn('console: undecodable message', e);
        return;
      }
      this.dispatch(msg);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
  }

  dispatch(msg) {
    const p = msg.payload || {};
    switch (msg.type) {
      case 'server.auth.success':
        this.everOpen = true;
        this.delay = 200;
        this.operatorId = p.operatorId;
        this.expiresAt = p.expiresAt;
        this.setState('open');
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send('operator.ping', {}), PING_MS);
        if (this.follow) this.send('operator.console', this.follow);
        break;
      case 'server.registration.reject':
        this.reject = p.reason || 'refused';
        break;
      case 'server.result':
        this.answer(p);
        break;
      default:
        this.emit(msg.type, p);
    }
  }

  answer(p) {
    const ref = p.ref;
    const key = resultKey(ref, p);
    let i = key != null ? this.pending.findIndex((q) => q.ref === ref && q.key === key) : -1;
    if (i < 0) i = this.pending.findIndex((q) => q.ref === ref);
    if (i < 0) {
      this.emit('result', p); // nobody waits (an answer to a request of the page's tests)
      return;
    }
    const [q] = this.pending.splice(i, 1);
    q.resolve(p);
    this.emit('result', p);
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    clearInterval(this.pinger);
    this.ws = null;
    this.lastClose = { code, reason: this.reject || reason };
    this.failPending(`the connection closed (${code}${reason ? ` ${reason}` : ''}) before the answer came`);
    if (this.state === 'closed') return;
    if (CONSOLE_FATAL[code]) {
      this.setState('refused', { code, reason: this.reject || reason || CONSOLE_FATAL[code], wasOpen: this.everOpen });
      return;
    }
    // 1012 (httpd restarting), 1001 (shut down), 1006 (killed) ...: again, soon at first.
    const wait = this.delay * (0.75 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.setState('reconnecting', { code, reason, retryMs: Math.round(wait) });
    this.timer = setTimeout(() => this.connect(), wait);
  }

  failPending(why) {
    const all = this.pending.splice(0);
    for (const q of all) q.resolve({ ref: q.ref, error: why, lost: true });
  }

  send(type, payload = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type, timestamp: Math.floor(Date.now() / 1000), payload }));
    if (type !== 'operator.ping' && this.sent.push(type) > 50) this.sent.shift();
    return true;
  }

  // A request: resolves with its server.result payload ({ status: "OK", ... }
  // or { error }); never rejects. key tells answers of one type apart (above).
  request(type, payload = {}, key = null) {
    return new Promise((resolve) => {
      if (this.state !== 'open' || !this.send(type, payload)) {
        resolve({ ref: type, error: 'not connected to the server; try again when it is back' });
        return;
      }
      this.pending.push({ ref: type, key, resolve });
    });
  }

  // operator.console: which stages' new lines, from which level; kept, and
  // asked again after a reconnect. { stages: [] } stops.
  setFollow(payload) {
    this.follow = payload.stages && payload.stages.length === 0 ? null : payload;
    return this.request('operator.console', payload);
  }

  get open() {
    return this.state === 'open';
  }

  close() {
    this.setState('closed');
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.failPending('signed out');
    if (this.ws) this.ws.close(1000, 'signed out');
    this.ws = null;
  }
}
