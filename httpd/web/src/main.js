// The proctor web app: sign in, the hall, the live wall, history, status,
// and for an operator's token the operator view. Where relay is:
// ?relay=ws://host:port[/proctor], else what httpd's GET /api/relay says: the
// page's own origin's /proctor behind the nginx site (a trusted proxy), or the
// page's own host on listen.relay's port (8081 when httpd does not say); the
// operator console is /api/ws on the page's own origin. See README.md.
import { fmtDuration, setToken } from './api.js';
import { Console, consoleUrl } from './console.js';
import { Grid } from './grid.js';
import { History } from './history.js';
import { MarkDialog, Marks } from './marks.js';
import { Ops } from './ops.js';
import { Relay } from './relay.js';
import { applyRole, guardExports } from './role.js';
import { StatusBar } from './status.js';
import { Wall } from './wall.js';
import { mseSupported } from './player.js';

const $ = (sel) => document.querySelector(sel);
const store = window.sessionStorage;

const RELAY_ANSWER_MS = 5000; // a sign-in that neither relay nor the console answered by then fails
let relayInfo = null; // GET /api/relay's answer, loaded before the first sign-in

function relayUrl() {
  const given = new URLSearchParams(location.search).get('relay') || store.getItem('vigil.relay');
  const ws = location.protocol === 'https:' ? 'wss' : 'ws';
  const path = (relayInfo && relayInfo.path) || '/proctor';
  let url = given || (relayInfo && relayInfo.sameOrigin ? `${ws}://${location.host}${path}`
    : `${ws}://${location.hostname}:${(relayInfo && relayInfo.port) || 8081}${path}`);
  if (!/^wss?:\/\//.test(url)) url = `ws://${url}`;
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/proctor';
  return u.toString();
}

// A ?relay= address is kept for the tab only once relay accepted a sign-in there;
// one that did not answer leaves the address bar and the tab.
function keepRelay() {
  const given = new URLSearchParams(location.search).get('relay');
  if (given) store.setItem('vigil.relay', given);
}
function forgetRelay() {
  store.removeItem('vigil.relay');
  const q = new URLSearchParams(location.search);
  q.delete('relay');
  history.replaceState(null, '', `${location.pathname}${q.size ? `?${q}` : ''}${location.hash}`);
}

// A ?token= link signs in directly; the token then leaves the address bar.
function takeToken() {
  const q = new URLSearchParams(location.search);
  const t = q.get('token');
  if (t) {
    store.setItem('vigil.token', t);
    q.delete('token');
    history.replaceState(null, '', `${location.pathname}${q.size ? `?${q}` : ''}${location.hash}`);
  }
  return store.getItem('vigil.token');
}

let app = null;
let pending = null; // the relay and console of a sign-in not answered yet
let role = 'unknown'; // operator | proctor, once the console answered operator.auth

function showSignIn(message) {
  $('#signin').hidden = false;
  $('#app').hidden = true;
  $('#signin-error').textContent = message || '';
  $('#signin-error').hidden = !message;
  $('#relay-addr').textContent = relayUrl();
  $('#token').focus();
}

// Closes that end the sign-in (3001, 3002, 3004 from relay or the console).
function refused(st) {
  if (st.code === 0) forgetRelay(); // an address WebSocket cannot even try
  else store.removeItem('vigil.token');
  $('#signin-wait').hidden = true;
  if (pending) pending.close();
  pending = null;
  if (app) app.stop();
  app = null;
  if (st.code === 0) {
    showSignIn(`${st.reason}.`);
    return;
  }
  const why = st.code === 3004 ? (/revoked/i.test(st.reason || '') ? 'Your token was revoked' : 'Your token has expired')
    : st.code === 3002 ? 'This page is too old for the server' : 'Token refused';
  showSignIn(`${why}: ${st.reason}. Sign in with a valid token.`);
}

// Relay checks the token (proctor.register) and, at the same time, the console
// tries it as an operator's (operator.auth): the app shows when either accepts
// it, so an operator gets in while relay is down. A proctor's token gets 3001
// from the console, and the page has no operator view.
function signIn(token) {
  // The form stays in view (with its message) until relay or the console accepts the token.
  $('#signin').hidden = false;
  $('#relay-addr').textContent = relayUrl();
  $('#signin-error').hidden = true;
  $('#signin-wait').textContent = 'Connecting…';
  $('#signin-wait').hidden = false;
  setToken(token);
  if (pending) pending.close();
  role = 'unknown';
  const relay = new Relay(relayUrl(), token);
  const con = new Console(consoleUrl(), token);
  const both = { relay, con, close: () => (relay.close(), con.close()) };
  pending = both;
  relay.history = []; // every connection state, for the tests
  relay.on('state', (st) => relay.history.push(st.state) > 50 && relay.history.shift());
  con.history = [];
  con.on('state', (st) => con.history.push(st.code ? `${st.state} ${st.code}` : st.state) > 50 && con.history.shift());
  let shown = false;
  const show = () => {
    if (shown) return;
    shown = true;
    pending = null;
    store.setItem('vigil.token', token);
    $('#signin-wait').hidden = true;
    start(relay, con);
  };
  // Neither relay nor the console took the token in time: a wrong address, or both down.
  const late = setTimeout(() => {
    if (shown || pending !== both) return;
    both.close();
    pending = null;
    forgetRelay();
    $('#signin-wait').hidden = true;
    $('#token').value = token;
    showSignIn(`Relay did not answer at ${relay.url} within ${RELAY_ANSWER_MS / 1000} s. Check the address; signing in again tries ${relayUrl()}.`);
  }, RELAY_ANSWER_MS);
  relay.on('state', (st) => {
    if (st.state === 'open') {
      clearTimeout(late);
      keepRelay();
      show();
      if (app && app.relay === relay) app.roleIs(relay.role);
    } else if (st.state === 'refused') refused(st);
    else if (st.state === 'reconnecting' && !shown) $('#signin-wait').textContent = `Cannot reach relay at ${relay.url}; retrying…`;
    if (app && app.relay === relay) app.status.relayState(st.state, st);
  });
  con.on('state', (st) => {
    if (st.state === 'open' && role !== 'operator') {
      clearTimeout(late);
      role = 'operator';
      show();
      if (app && app.con === con) app.operator();
    } else if (st.state === 'refused') {
      if (role === 'operator') refused(st); // revoked or expired while signed in
      else role = 'proctor'; // not an operator's token: relay decides alone
    }
  });
  relay.connect();
  con.connect();
}

// The header's notice; a shutdown countdown stays until the server is gone.
let shutdownTimer = null;
function notice(text) {
  if (!shutdownTimer) $('#notice').textContent = text;
}
function shutdownAt(at) {
  clearInterval(shutdownTimer);
  const tick = () => {
    const left = at - Date.now();
    $('#notice').textContent = left > 0 ? `The server shuts down in ${fmtDuration(left)}.` : 'The server is shutting down.';
    if (left <= 0) clearInterval(shutdownTimer);
  };
  shutdownTimer = setInterval(tick, 1000);
  tick();
}

function start(relay, con) {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  for (const id of ['#view-hall', '#view-live', '#view-history', '#view-ops', '#statusbar']) $(id).replaceChildren();
  $('#tab-ops').hidden = true;
  const status = new StatusBar($('#statusbar'), $('#banner'));
  status.relayState(relay.state);
  const tabs = { hall: $('#tab-hall'), live: $('#tab-live'), history: $('#tab-history'), ops: $('#tab-ops') };
  const views = { hall: $('#view-hall'), live: $('#view-live'), history: $('#view-history'), ops: $('#view-ops') };
  let ops = null;
  const show = (name) => {
    if (name === 'ops' && !ops) name = 'hall';
    for (const k of Object.keys(tabs)) {
      tabs[k].setAttribute('aria-selected', String(k === name));
      views[k].hidden = k !== name;
    }
    $('#filter').disabled = name !== 'hall' && name !== 'live';
    if (name !== 'history') historyView.stop();
    if (ops) ops.show(name === 'ops');
    // #operator names the operator view (a bookmark opens it after the sign-in).
    const hash = name === 'ops' ? '#operator' : '';
    if (location.hash !== hash) history.replaceState(null, '', `${location.pathname}${location.search}${hash}`);
  };
  // From a live tile, history opens where the tile's picture was (its clock
  // time); from elsewhere, at the session's start.
  const openHistory = (s, at = null) => {
    show('history');
    historyView.show(s && s.sentinelId, at == null ? null : { sessionId: s.sessionId, at });
  };
  const tileAt = (id) => {
    const t = wall.tiles.get(id);
    const d = t && t.player.delay();
    return d == null ? null : Date.now() - d;
  };
  const marks = new Marks(relay);
  const markDialog = new MarkDialog(marks);
  const wall = new Wall(views.live, relay, {
    onHistory: (s) => openHistory(s, tileAt(s.sentinelId)),
    onChange: (n) => {
      tabs.live.textContent = `Live (${n}/16)`;
    },
    marks,
    markDialog,
  });
  const grid = new Grid(views.hall, {
    onCounts: ({ offline }) => {
      const n = offline.length;
      $('#offline-count').textContent = `${n} offline`;
      $('#offline-count').title = offline.join(', ');
      $('#offline-count').hidden = n === 0;
    },
    onWatch: (s) => {
      const at = performance.now();
      show('live');
      if (!wall.open(s, at)) notice('The wall is full (16 streams): close one first.');
    },
    onHistory: openHistory,
  });
  const historyView = new History(views.history, () => grid.sentinels());
  relay.on('server.sentinels', (p) => grid.setAll(p.sentinels || []));
  relay.on('server.sentinel.online', (p) => grid.upsert(p.sentinel));
  relay.on('server.sentinel.offline', (p) => grid.offline(p.sentinelId));
  relay.on('server.status', (p) => status.show(p, 'relay'));
  const expiring = (p) => notice(`Your token expires at ${new Date(p.expiresAt).toLocaleTimeString()}; sign in again then.`);
  relay.on('server.token.expiring', expiring);
  relay.on('server.shutdown', (p) => shutdownAt(p.at));
  relay.on('server.error', (p) => console.warn('relay error', p));
  con.on('server.token.expiring', expiring);
  con.on('server.token.expired', () => notice('Your token has expired.'));
  con.on('server.shutdown', (p) => shutdownAt(p.at));
  con.on('server.status', (p) => status.show(p, 'console'));
  con.on('server.metrics', (p) => {
    if (p.uptimeMs != null) status.uptime = p.uptimeMs; // drawn with the next status
  });
  for (const [name, tab] of Object.entries(tabs)) tab.addEventListener('click', () => (name === 'history' ? openHistory(null) : show(name)));
  // The name filter, for the hall and the wall, kept in the address (?filter=).
  const filter = (text) => {
    grid.setFilter(text);
    wall.setFilter(text);
    const q = new URLSearchParams(location.search);
    if (text) q.set('filter', text);
    else q.delete('filter');
    history.replaceState(null, '', `${location.pathname}${q.size ? `?${q}` : ''}${location.hash}`);
  };
  $('#filter').value = new URLSearchParams(location.search).get('filter') || '';
  if ($('#filter').value) filter($('#filter').value);
  $('#filter').oninput = (e) => filter(e.target.value);
  $('#signout').addEventListener('click', () => {
    store.removeItem('vigil.token');
    location.reload();
  });
  // Bitrates change: the list again every 5 s; the delay captions every second.
  const timers = [setInterval(() => relay.send('proctor.list', {}), 5000), setInterval(() => wall.tick(), 1000)];
  grid.loadArchived();
  if (!mseSupported) notice('This browser has no Media Source Extensions: live view cannot play.');
  const wantOps = location.hash === '#operator';
  show('hall');
  app = {
    relay, con, grid, wall, history: historyView, status, marks,
    get role() {
      return role;
    },
    tokenRole: null,
    // The token's role from relay's ack; an operator's is known from the console too.
    roleIs(r) {
      if (r) this.tokenRole = r;
      applyRole(this.tokenRole, views.history);
    },
    get ops() {
      return ops;
    },
    // The console accepted the token as an operator's: the Operator tab appears.
    operator() {
      this.roleIs('operator');
      if (ops) return;
      ops = new Ops(views.ops, con, { notify: notice });
      tabs.ops.hidden = false;
      if (wantOps) show('ops');
    },
    stop() {
      timers.forEach(clearInterval);
      status.stop();
      grid.stop();
      wall.stop();
      markDialog.node.remove();
      clearInterval(shutdownTimer);
      shutdownTimer = null;
      historyView.stop();
      if (ops) ops.stop();
      relay.close();
      con.close();
    },
  };
  if (role === 'operator') app.operator();
  app.roleIs(relay.role);
  window.vigil = app; // for the browser tests and the benchmark
}

guardExports(notice);
$('#signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('#token').value.trim();
  if (t) signIn(t);
});
// An httpd that does not answer /api/relay (or a page served by another
// server) leaves the default: the page's host on port 8081.
async function loadRelayInfo() {
  try {
    const res = await fetch('/api/relay', { cache: 'no-store', signal: AbortSignal.timeout(5000) });
    if (res.ok) relayInfo = await res.json();
  } catch (e) {
    console.warn('relay address: GET /api/relay failed, using the default', e);
  }
}

loadRelayInfo().then(() => {
  const token = takeToken();
  if (token) signIn(token);
  else showSignIn();
});
