// The live wall: up to 16 tiles, each a LivePlayer fed from the one relay
// socket. A tile that is off screen, or every tile while the tab is hidden,
// is paused and unsubscribed; it subscribes again (from the newest keyframe)
// when it shows.
import { el } from './api.js';
import { LivePlayer } from './player.js';

export const MAX_TILES = 16;
const LABELS = {
  connecting: 'connecting…',
  'waiting-for-keyframe': 'waiting for keyframe…',
  playing: '',
  offline: 'offline',
  reconnecting: 'reconnecting…',
  skipped: 'skipped (too slow), resuming at next keyframe…',
  paused: 'paused (not visible)',
  error: 'error',
};

export class Wall {
  constructor(root, relay, { onHistory, onChange }) {
    this.root = root;
    this.relay = relay;
    this.onHistory = onHistory;
    this.onChange = onChange;
    this.tiles = new Map(); // sentinelId -> tile
    this.grid = el('div', { class: 'wall', 'data-count': 0 });
    root.classList.add('live');
    this.empty = el('p', { class: 'empty' }, 'Choose sentinels in the hall to watch them live (up to 16).');
    root.append(this.empty, this.grid);
    this.seen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const t = this.tiles.get(e.target.dataset.id);
        if (t) {
          t.onScreen = e.isIntersecting;
          this.sync(t);
        }
      }
    });
    document.addEventListener('visibilitychange', () => this.tiles.forEach((t) => this.sync(t)));
    relay.on('server.init', (p) => this.with(p.sentinelId, (t) => {
      t.player.init(p);
    }));
    relay.on('server.segment', (p) => this.with(p.sentinelId, (t) => {
      t.player.segment(p);
      if (t.state === 'skipped' && p.keyframe) this.setState(t, 'playing');
    }));
    relay.on('server.skip', (p) => this.with(p.sentinelId, (t) => this.setState(t, 'skipped')));
    relay.on('server.sentinel.offline', (p) => this.with(p.sentinelId, (t) => this.setState(t, 'offline')));
    relay.on('server.sentinel.online', (p) => this.with(p.sentinel.sentinelId, (t) => {
      t.name = p.sentinel.name || t.name;
      if (t.state === 'offline') this.setState(t, 'waiting-for-keyframe');
    }));
    relay.on('state', ({ state }) => {
      for (const t of this.tiles.values()) {
        if (state === 'reconnecting' && t.subscribed) this.setState(t, 'reconnecting');
        if (state === 'open' && t.subscribed && t.state === 'reconnecting') this.setState(t, 'connecting');
      }
    });
  }

  with(id, fn) {
    const t = this.tiles.get(id);
    if (t && t.subscribed) fn(t);
  }

  has(id) {
    return this.tiles.has(id);
  }

  get full() {
    return this.tiles.size >= MAX_TILES;
  }

  // Opens a tile (false when the wall is full); an open tile is just focused.
  open(s, clickedAt = performance.now()) {
    const old = this.tiles.get(s.sentinelId);
    if (old) {
      old.node.querySelector('button').focus();
      return true;
    }
    if (this.full) return false;
    const video = el('video', { muted: true, playsinline: true, 'aria-label': `Live picture of ${s.name}` });
    const badge = el('div', { class: 'badge', role: 'status' });
    const caption = el('span', { class: 'name' }, s.name || s.sentinelId.slice(0, 8));
    const delay = el('span', { class: 'delay' });
    const t = { id: s.sentinelId, name: s.name, node: null, video, badge, delay, state: null, subscribed: false, onScreen: true, clickedAt };
    const kf = el('button', { type: 'button', title: 'Ask the sentinel for a keyframe now', onclick: () => this.relay.send('proctor.keyframe.request', { sentinelId: t.id }) }, 'Keyframe');
    const hist = el('button', { type: 'button', onclick: () => this.onHistory(s) }, 'History');
    const close = el('button', { type: 'button', 'aria-label': `Close ${s.name}`, onclick: () => this.close(t.id) }, '✕');
    t.node = el(
      'figure',
      { class: 'tile', 'data-id': t.id },
      el('div', { class: 'screen' }, video, badge),
      el('figcaption', {}, caption, delay, el('span', { class: 'tools' }, kf, hist, close))
    );
    t.player = new LivePlayer(video, (state, detail) => this.setState(t, state, detail));
    this.tiles.set(t.id, t);
    this.grid.append(t.node);
    this.layout();
    this.setState(t, s.online === false ? 'offline' : 'connecting');
    this.sync(t);
    this.seen.observe(t.node);
    return true;
  }

  close(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    this.seen.unobserve(t.node);
    if (t.subscribed) this.relay.unsubscribe(id);
    t.player.destroy();
    t.node.remove();
    this.tiles.delete(id);
    this.layout();
  }

  // Subscribed exactly while the tile can be seen.
  sync(t) {
    const want = t.onScreen && !document.hidden;
    if (want === t.subscribed) return;
    t.subscribed = want;
    if (want) {
      this.relay.subscribe(t.id);
      if (t.state === 'paused') this.setState(t, this.relay.open ? 'connecting' : 'reconnecting');
    } else {
      this.relay.unsubscribe(t.id);
      t.player.teardown();
      if (t.state !== 'offline') this.setState(t, 'paused');
    }
  }

  setState(t, state, detail) {
    t.state = state;
    t.node.dataset.state = state;
    t.badge.textContent = state === 'error' && detail ? `error: ${detail.reason}` : LABELS[state];
    t.badge.hidden = !t.badge.textContent;
  }

  layout() {
    const n = this.tiles.size;
    this.grid.dataset.count = n;
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.grid.style.setProperty('--cols', cols);
    this.grid.style.setProperty('--rows', Math.max(1, Math.ceil(n / cols)));
    this.empty.hidden = n > 0;
    this.onChange(n);
  }

  // Shown under each tile, every second: how far behind live it plays.
  tick() {
    for (const t of this.tiles.values()) {
      const d = t.state === 'playing' ? t.player.delay() : null;
      t.delay.textContent = d == null ? '' : `${(d / 1000).toFixed(1)} s`;
      t.delay.title = 'behind the sentinel\'s clock';
    }
  }

  // For tests and the benchmark: what each tile is doing.
  stats() {
    return [...this.tiles.values()].map((t) => {
      const q = t.video.getVideoPlaybackQuality ? t.video.getVideoPlaybackQuality() : {};
      return {
        id: t.id,
        state: t.state,
        currentTime: t.video.currentTime,
        frames: q.totalVideoFrames || 0,
        lag: t.player.lag(),
        delayMs: t.player.delay(),
        firstFrameMs: t.player.stats.firstFrameAt == null ? null : t.player.stats.firstFrameAt - t.clickedAt,
        jumps: t.player.stats.jumps,
        segments: t.player.stats.segments,
        durations: t.player.durations(),
        held: t.player.held(),
      };
    });
  }
}
