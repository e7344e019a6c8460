// The proctor web app: sign in, the hall, the live wall, history, status.
// Where relay is: ?relay=ws://host:port[/proctor], else the page's own host on
// port 8081 (listen.relay's default); see README.md.
import { setToken } from './api.js';
import { Grid } from './grid.js';
import { History } from './history.js';
import { Relay } from './relay.js';
import { StatusBar } from './status.js';
import { Wall } from './wall.js';
import { mseSupported } from './player.js';

const $ = (sel) => document.querySelector(sel);
const store = window.sessionStorage;

function relayUrl() {
  const given = new URLSearchParams(location.search).get('relay') || store.getItem('vigil.relay');
  let url = given || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:8081/proctor`;
  if (given) store.setItem('vigil.relay', given);
  if (!/^wss?:\/\//.test(url)) url = `ws://${url}`;
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/proctor';
  return u.toString();
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
let pending = null; // the relay of a sign-in not answered yet

function showSignIn(message) {
  $('#signin').hidden = false;
  $('#app').hidden = true;
  $('#signin-error').textContent = message || '';
  $('#signin-error').hidden = !message;
  $('#relay-addr').textContent = relayUrl();
  $('#token').focus();
}

function signIn(token) {
  // The form stays in view (with its message) until relay accepts the token.
  $('#signin').hidden = false;
  $('#relay-addr').textContent = relayUrl();
  $('#signin-error').hidden = true;
  $('#signin-wait').textContent = 'Connecting…';
  $('#signin-wait').hidden = false;
  setToken(token);
  if (pending) pending.close();
  const relay = new Relay(relayUrl(), token);
  pending = relay;
  relay.history = []; // every connection state, for the tests
  relay.on('state', (st) => relay.history.push(st.state) > 50 && relay.history.shift());
  let shown = false;
  relay.on('state', (st) => {
    if (st.state === 'open' && !shown) {
      shown = true;
      pending = null;
      store.setItem('vigil.token', token);
      $('#signin-wait').hidden = true;
      start(relay);
    } else if (st.state === 'refused') {
      store.removeItem('vigil.token');
      $('#signin-wait').hidden = true;
      if (pending === relay) pending = null;
      if (app) app.stop();
      app = null;
      const why = st.code === 3004 ? 'Your token has expired' : st.code === 3002 ? 'This page is too old for the server' : 'Token refused';
      showSignIn(`${why}: ${st.reason}. Sign in with a valid proctor token.`);
    } else if (st.state === 'reconnecting' && !shown) {
      $('#signin-wait').textContent = `Cannot reach relay at ${relay.url}; retrying…`;
    }
    if (app) app.status.relayState(st.state, st);
  });
  relay.connect();
}

function start(relay) {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  for (const id of ['#view-hall', '#view-live', '#view-history', '#statusbar']) $(id).replaceChildren();
  const status = new StatusBar($('#statusbar'));
  status.relayState(relay.state);
  const tabs = { hall: $('#tab-hall'), live: $('#tab-live'), history: $('#tab-history') };
  const views = { hall: $('#view-hall'), live: $('#view-live'), history: $('#view-history') };
  const show = (name) => {
    for (const k of Object.keys(tabs)) {
      tabs[k].setAttribute('aria-selected', String(k === name));
      views[k].hidden = k !== name;
    }
    $('#filter').disabled = name !== 'hall';
    if (name !== 'history') historyView.stop();
  };
  const openHistory = (s) => {
    show('history');
    historyView.show(s && s.sentinelId);
  };
  const wall = new Wall(views.live, relay, {
    onHistory: openHistory,
    onChange: (n) => {
      tabs.live.textContent = `Live (${n}/16)`;
    },
  });
  const grid = new Grid(views.hall, {
    onWatch: (s) => {
      const at = performance.now();
      show('live');
      if (!wall.open(s, at)) $('#notice').textContent = 'The wall is full (16 streams): close one first.';
    },
    onHistory: openHistory,
  });
  const historyView = new History(views.history, () => grid.sentinels());
  relay.on('server.sentinels', (p) => grid.setAll(p.sentinels || []));
  relay.on('server.sentinel.online', (p) => grid.upsert(p.sentinel));
  relay.on('server.sentinel.offline', (p) => grid.offline(p.sentinelId));
  relay.on('server.status', (p) => status.show(p, 'relay'));
  relay.on('server.token.expiring', (p) => {
    $('#notice').textContent = `Your token expires at ${new Date(p.expiresAt).toLocaleTimeString()}; sign in again then.`;
  });
  relay.on('server.error', (p) => console.warn('relay error', p));
  for (const [name, tab] of Object.entries(tabs)) tab.addEventListener('click', () => (name === 'history' ? openHistory(null) : show(name)));
  $('#filter').addEventListener('input', (e) => grid.setFilter(e.target.value));
  $('#signout').addEventListener('click', () => {
    store.removeItem('vigil.token');
    location.reload();
  });
  // Bitrates change: the list again every 5 s; the delay captions every second.
  const timers = [setInterval(() => relay.send('proctor.list', {}), 5000), setInterval(() => wall.tick(), 1000)];
  grid.loadArchived();
  if (!mseSupported) $('#notice').textContent = 'This browser has no Media Source Extensions: live view cannot play.';
  show('hall');
  app = {
    relay, grid, wall, history: historyView, status,
    stop() {
      timers.forEach(clearInterval);
      for (const t of [...wall.tiles.keys()]) wall.close(t);
      historyView.stop();
      relay.close();
    },
  };
  window.vigil = app; // for the browser tests and the benchmark
}

$('#signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('#token').value.trim();
  if (t) signIn(t);
});
const token = takeToken();
if (token) signIn(token);
else showSignIn();
