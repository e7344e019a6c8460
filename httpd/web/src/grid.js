// The hall: a card per sentinel (name, online state, bitrate, a snapshot
// refreshed every few seconds), filtered by name. Cards are updated in place
// and have a fixed size, so nothing moves when events arrive.
import { el, fmtBitrate, getJSON, headers, sentinelPath } from './api.js';

const SNAPSHOT_MS = 4000;

export class Grid {
  constructor(root, { onWatch, onHistory }) {
    this.root = root;
    this.onWatch = onWatch;
    this.onHistory = onHistory;
    this.cards = new Map(); // sentinelId -> { node, s, img, visible, url }
    this.filter = '';
    this.list = el('ul', { class: 'cards', 'aria-label': 'Sentinels' });
    this.empty = el('p', { class: 'empty' }, 'No sentinel has connected yet.');
    root.append(this.empty, this.list);
    this.seen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const c = this.cards.get(e.target.dataset.id);
        if (c) c.visible = e.isIntersecting;
      }
    });
    this.timer = setInterval(() => this.refreshSnapshots(), SNAPSHOT_MS);
  }

  sentinels() {
    return [...this.cards.values()].map((c) => c.s);
  }

  // A full server.sentinels list: sentinels it no longer names are kept (offline).
  setAll(list) {
    for (const s of list) this.upsert(s);
  }

  upsert(s) {
    let c = this.cards.get(s.sentinelId);
    if (!c) {
      c = this.create(s);
      this.cards.set(s.sentinelId, c);
      this.place(c);
    }
    const nameChanged = c.s.name !== s.name;
    c.s = { ...c.s, ...s };
    if (nameChanged) this.place(c);
    this.render(c);
    if (s.online && !c.url) this.snapshot(c);
  }

  offline(id) {
    const c = this.cards.get(id);
    if (!c) return;
    c.s = { ...c.s, online: false, bitrate: 0 };
    this.render(c);
  }

  create(s) {
    const img = el('img', { alt: '', width: 320, height: 180 });
    const name = el('span', { class: 'name' });
    const state = el('span', { class: 'state' });
    const rate = el('span', { class: 'rate' });
    const watch = el(
      'button',
      { class: 'watch', type: 'button', onclick: () => this.onWatch(c.s) },
      el('span', { class: 'thumb' }, img, el('span', { class: 'nosnap' }, 'no picture yet')),
      name
    );
    const hist = el('button', { class: 'hist', type: 'button', onclick: () => this.onHistory(c.s) }, 'History');
    const node = el('li', { class: 'card', 'data-id': s.sentinelId }, watch, el('div', { class: 'meta' }, state, rate, hist));
    const c = { node, s, img, name, state, rate, watch, hist, visible: false, url: null };
    this.seen.observe(node);
    return c;
  }

  place(c) {
    const key = (x) => (x.name || x.sentinelId).toLowerCase();
    const after = [...this.cards.values()]
      .filter((o) => o !== c && o.node.isConnected)
      .sort((a, b) => key(a.s).localeCompare(key(b.s)))
      .find((o) => key(o.s).localeCompare(key(c.s)) > 0);
    this.list.insertBefore(c.node, after ? after.node : null);
    this.empty.hidden = true;
  }

  render(c) {
    const s = c.s;
    c.name.textContent = s.name || s.sentinelId.slice(0, 8);
    c.state.textContent = s.online ? 'online' : 'offline';
    c.node.classList.toggle('online', !!s.online);
    c.rate.textContent = s.online ? fmtBitrate(s.bitrate) : '';
    c.watch.setAttribute('aria-label', `Watch ${c.name.textContent} (${c.state.textContent})`);
    c.hist.setAttribute('aria-label', `History of ${c.name.textContent}`);
    c.node.hidden = !!this.filter && !c.name.textContent.toLowerCase().includes(this.filter);
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    for (const c of this.cards.values()) this.render(c);
  }

  refreshSnapshots() {
    if (document.hidden) return;
    for (const c of this.cards.values()) if (c.s.online && c.visible && !c.node.hidden) this.snapshot(c);
  }

  async snapshot(c) {
    if (c.loading) return;
    c.loading = true;
    try {
      const res = await fetch(sentinelPath(c.s.sentinelId, '/snapshot.jpg'), { headers: headers(), cache: 'no-store' });
      if (!res.ok) return;
      const url = URL.createObjectURL(await res.blob());
      c.img.onload = () => {
        if (c.url) URL.revokeObjectURL(c.url);
        c.url = url;
        c.node.classList.add('has-snap');
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
      for (const s of await getJSON('/api/sentinels')) if (!this.cards.has(s.sentinelId)) this.upsert(s);
    } catch (e) {
      /* no httpd API here */
    }
  }
}
