// The hall: a card per sentinel (name, online state, bitrate, a snapshot
// refreshed every few seconds and its age), grouped by the part of the name
// before " / " ("Hall A / seat 12" is seat 12 of Hall A), groups and cards
// sorted by name, filtered by name. A sentinel relay knows that is not online
// is marked offline at once and counted; one known only from the archive is
// just "not connected". Cards are updated in place and have a fixed size.
import { el, fmtBitrate, getJSON, headers, sentinelPath } from './api.js';
import { fmtClock } from './marks.js';

const SNAPSHOT_MS = 4000;
const SEP = ' / ';
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

export function splitName(name) {
  const i = name.indexOf(SEP);
  return i > 0 ? [name.slice(0, i).trim(), name.slice(i + SEP.length).trim()] : ['', name];
}

function fmtAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

export class Grid {
  constructor(root, { onWatch, onHistory, onCounts }) {
    this.root = root;
    this.onWatch = onWatch;
    this.onHistory = onHistory;
    this.onCounts = onCounts || (() => {});
    this.cards = new Map(); // sentinelId -> { node, s, img, visible, url, ... }
    this.groups = new Map(); // group name -> { node, list, head, counts }
    this.filter = '';
    this.groupsNode = el('div', { class: 'groups' });
    this.empty = el('p', { class: 'empty' }, 'No sentinel has connected yet.');
    root.append(this.empty, this.groupsNode);
    this.seen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const c = this.cards.get(e.target.dataset.id);
        if (c) c.visible = e.isIntersecting;
      }
    });
    this.timer = setInterval(() => this.refreshSnapshots(), SNAPSHOT_MS);
    this.ager = setInterval(() => this.cards.forEach((c) => this.age(c)), 1000);
  }

  stop() {
    clearInterval(this.timer);
    clearInterval(this.ager);
    this.seen.disconnect();
  }

  sentinels() {
    return [...this.cards.values()].map((c) => c.s);
  }

  // A full server.sentinels list (relay): sentinels it no longer names are kept (offline).
  setAll(list) {
    this.batch = true;
    for (const s of list) this.upsert(s);
    this.batch = false;
    this.groups.forEach((g) => this.renderGroup(g));
    this.counted();
    this.findSince();
  }

  // From relay (live = true) or from the archive's list.
  upsert(s, live = true) {
    let c = this.cards.get(s.sentinelId);
    if (!c) {
      c = this.create(s);
      this.cards.set(s.sentinelId, c);
    }
    const moved = c.s.name !== s.name || !c.node.isConnected;
    if (live) c.live = true;
    if (s.online) c.since = null;
    else if (live && c.s.online) c.since = Date.now();
    c.s = { ...c.s, ...s };
    if (moved) this.place(c);
    this.render(c);
    if (this.pictured(c) && !c.url) this.snapshot(c);
  }

  offline(id) {
    const c = this.cards.get(id);
    if (!c) return;
    if (c.s.online || !c.since) c.since = Date.now();
    c.live = true;
    c.s = { ...c.s, online: false, bitrate: 0 };
    this.render(c);
  }

  create(s) {
    const img = el('img', { alt: '', width: 320, height: 180 });
    const name = el('span', { class: 'name' });
    const state = el('span', { class: 'state' });
    const rate = el('span', { class: 'rate' });
    const snapAge = el('span', { class: 'snap-age' });
    const watch = el(
      'button',
      { class: 'watch', type: 'button', onclick: () => this.onWatch({ ...c.s, offlineSince: c.since }) },
      el('span', { class: 'thumb' }, img, el('span', { class: 'nosnap' }, 'no picture yet'), snapAge),
      name
    );
    const hist = el('button', { class: 'hist', type: 'button', onclick: () => this.onHistory(c.s) }, 'History');
    const node = el('li', { class: 'card', 'data-id': s.sentinelId }, watch, el('div', { class: 'meta' }, state, rate, hist));
    const c = { node, s, img, name, state, rate, snapAge, watch, hist, visible: false, url: null, live: false, since: null };
    this.seen.observe(node);
    return c;
  }

  fullName(s) {
    return s.name || s.sentinelId.slice(0, 8);
  }

  group(name) {
    let g = this.groups.get(name);
    if (g) return g;
    const counts = el('span', { class: 'group-counts' });
    const head = el('h2', { class: 'group-head' }, el('span', { class: 'group-name' }, name || 'Other sentinels'), counts);
    const list = el('ul', { class: 'cards', 'aria-label': name ? `Sentinels of ${name}` : 'Sentinels' });
    g = { name, node: el('section', { class: 'group', 'data-group': name }, head, list), list, head, counts };
    this.groups.set(name, g);
    const after = [...this.groups.values()].filter((o) => o !== g && o.node.isConnected).sort((a, b) => collator.compare(a.name, b.name)).find((o) => collator.compare(o.name, name) > 0);
    this.groupsNode.insertBefore(g.node, after ? after.node : null);
    return g;
  }

  place(c) {
    const old = c.group;
    const full = this.fullName(c.s);
    const g = this.group(splitName(full)[0]);
    c.group = g;
    const after = [...this.cards.values()]
      .filter((o) => o !== c && o.group === g && o.node.isConnected)
      .sort((a, b) => collator.compare(this.fullName(a.s), this.fullName(b.s)))
      .find((o) => collator.compare(this.fullName(o.s), full) > 0);
    g.list.insertBefore(c.node, after ? after.node : null);
    this.empty.hidden = true;
    if (old && old !== g) this.renderGroup(old);
  }

  render(c) {
    const s = c.s;
    const full = this.fullName(s);
    const alarm = c.live && !s.online;
    c.name.textContent = splitName(full)[1];
    c.name.title = full;
    c.state.textContent = s.online ? 'online' : alarm ? (c.since ? `offline since ${fmtClock(c.since)}` : 'offline') : 'not connected';
    c.node.classList.toggle('online', !!s.online);
    c.node.classList.toggle('offline', alarm);
    c.rate.textContent = s.online ? fmtBitrate(s.bitrate) : '';
    c.watch.setAttribute('aria-label', `Watch ${full} (${c.state.textContent})`);
    c.hist.setAttribute('aria-label', `History of ${full}`);
    c.node.hidden = !!this.filter && !full.toLowerCase().includes(this.filter);
    this.age(c);
    if (this.batch) return;
    this.renderGroup(c.group);
    this.counted();
  }

  renderGroup(g) {
    if (!g) return;
    const cards = [...this.cards.values()].filter((c) => c.group === g);
    const online = cards.filter((c) => c.s.online).length;
    const off = cards.filter((c) => c.live && !c.s.online).length;
    g.counts.textContent = `${online} online${off ? ` · ${off} offline` : ''}`;
    g.node.classList.toggle('has-offline', off > 0);
    g.node.hidden = !cards.some((c) => !c.node.hidden);
    // A lone group of names without " / " needs no heading.
    const named = [...this.groups.values()].some((x) => x.name && !x.node.hidden);
    for (const x of this.groups.values()) x.head.hidden = !x.name && !named;
  }

  counted() {
    const all = [...this.cards.values()];
    this.onCounts({ online: all.filter((c) => c.s.online).length, offline: all.filter((c) => c.live && !c.s.online).map((c) => this.fullName(c.s)) });
  }

  // When a card's picture was taken (it is at most 1 s old when fetched).
  age(c) {
    c.snapAge.textContent = c.snapAt ? fmtAge(Date.now() - c.snapAt) : '';
    c.snapAge.classList.toggle('old', !!c.snapAt && Date.now() - c.snapAt > 2 * SNAPSHOT_MS);
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    this.batch = true;
    for (const c of this.cards.values()) this.render(c);
    this.batch = false;
    this.groups.forEach((g) => this.renderGroup(g));
  }

  refreshSnapshots() {
    if (document.hidden) return;
    for (const c of this.cards.values()) if (this.pictured(c) && c.visible && !c.node.hidden) this.snapshot(c);
  }

  // Media flows (relay's bitrate over the last 5 s): there is a picture to ask
  // for, and no 404 of a sentinel that has only just connected.
  pictured(c) {
    return !!c.s.online && (c.s.bitrate > 0 || c.s.lastSequence > 0);
  }

  async snapshot(c) {
    if (c.loading) return;
    c.loading = true;
    try {
      const res = await fetch(sentinelPath(c.s.sentinelId, '/snapshot.jpg'), { headers: headers(), cache: 'no-store' });
      if (!res.ok) return;
      const url = URL.createObjectURL(await res.blob());
      const at = Date.now();
      c.img.onload = () => {
        if (c.url) URL.revokeObjectURL(c.url);
        c.url = url;
        c.snapAt = at;
        c.node.classList.add('has-snap');
        this.age(c);
      };
      c.img.src = url;
    } catch (e) {
      /* httpd unreachable: keep the last picture */
    } finally {
      c.loading = false;
    }
  }

  // Archived sentinels (httpd's GET /api/sentinels) for history; relay only knows the ring's.
  async loadArchived() {
    try {
      for (const s of await getJSON('/api/sentinels')) if (!this.cards.has(s.sentinelId)) this.upsert(s, false);
    } catch (e) {
      /* no httpd API here */
    }
  }

  // Offline when the page came: since the end of its newest session (GET /api/sessions).
  async findSince() {
    const want = [...this.cards.values()].filter((c) => c.live && !c.s.online && !c.since && !c.asked);
    if (!want.length) return;
    want.forEach((c) => (c.asked = true));
    try {
      const ended = new Map();
      for (const x of await getJSON('/api/sessions?limit=100')) if (x.endTime && !ended.has(x.sentinelId)) ended.set(x.sentinelId, x.endTime);
      for (const c of want) {
        if (!c.since && !c.s.online && ended.has(c.s.sentinelId)) {
          c.since = ended.get(c.s.sentinelId);
          this.render(c);
        }
      }
    } catch (e) {
      /* "offline" without the time */
    }
  }
}
