// The live wall: up to 16 tiles, each a LivePlayer fed from the one relay
// socket. A tile that is off screen, or every tile while the tab is hidden,
// is paused and unsubscribed; it subscribes again (from the newest keyframe)
// when it shows. A click on a tile shows it alone, large (single.js), with
// relay's memory buffer to go back over; the name filter hides tiles too.
import { el } from './api.js';
import { fmtClock } from './marks.js';
import { LivePlayer } from './player.js';
import { SingleView } from './single.js';

export const MAX_TILES = 16;
const LABELS = {
  connecting: 'connecting…',
  'waiting-for-keyframe': 'waiting for the first picture…',
  playing: '',
  offline: 'offline',
  reconnecting: 'reconnecting…',
  skipped: 'skipped (too slow), resuming at the next full picture…',
  paused: 'paused (not visible)',
  error: 'error',
};
const TOAST_MS = 5000;
const MARKS_AGAIN_MS = 10000; // a tile shown again asks httpd for its marks at most this often
const matches = (name, filter) => !filter || (name || '').toLowerCase().includes(filter);

export class Wall {
  constructor(root, relay, { onHistory, onChange, marks, markDialog }) {
    this.root = root;
    this.relay = relay;
    this.onHistory = onHistory;
    this.onChange = onChange;
    this.marks = marks;
    this.markDialog = markDialog;
    this.tiles = new Map(); // sentinelId -> tile
    this.filter = '';
    this.single = null; // the tile shown alone
    this.hover = null;
    this.grid = el('div', { class: 'wall', 'data-count': 0 });
    root.classList.add('live');
    this.empty = el('p', { class: 'empty' }, 'Choose sentinels in the hall to watch them live (up to 16).');
    root.append(this.empty, this.grid);
    this.view = new SingleView(root, this);
    this.seen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const t = this.tiles.get(e.target.dataset.id);
        if (t) {
          t.onScreen = e.isIntersecting;
          this.sync(t);
        }
      }
    });
    this.abort = new AbortController();
    const signal = this.abort.signal;
    document.addEventListener('visibilitychange', () => this.tiles.forEach((t) => this.sync(t)), { signal });
    document.addEventListener('keydown', (e) => this.key(e), { signal });
    relay.on('server.init', (p) => this.with(p.sentinelId, (t) => {
      // A new session has no mark yet but those server.mark brings (httpd may
      // not know it for a moment: no GET).
      if (p.sessionId && p.sessionId !== t.sessionId) {
        t.sessionId = p.sessionId;
        this.flags(t);
      }
      t.player.init(p);
    }));
    relay.on('server.segment', (p) => this.with(p.sentinelId, (t) => {
      t.player.segment(p);
      if (t.state === 'skipped' && p.keyframe) this.setState(t, 'playing');
    }));
    relay.on('server.skip', (p) => this.with(p.sentinelId, (t) => this.setState(t, 'skipped')));
    // Whether subscribed or not (a paused tile shows it when it shows again).
    relay.on('server.sentinel.offline', (p) => {
      const t = this.tiles.get(p.sentinelId);
      if (!t) return;
      t.offline = true;
      t.offlineSince = Date.now();
      if (t.subscribed) this.setState(t, 'offline');
    });
    relay.on('server.sentinel.online', (p) => {
      const t = this.tiles.get(p.sentinel.sentinelId);
      if (!t) return;
      t.offline = false;
      t.offlineSince = null;
      if (t.state === 'offline') this.setState(t, 'waiting-for-keyframe');
    });
    relay.on('state', ({ state }) => {
      for (const t of this.tiles.values()) {
        if (state === 'reconnecting' && t.subscribed) this.setState(t, 'reconnecting');
        if (state === 'open' && t.subscribed && t.state === 'reconnecting') this.setState(t, 'connecting');
      }
    });
    marks.onMark((m, mine) => {
      const t = this.tiles.get(m.sentinelId);
      if (!t) return;
      this.flags(t);
      if (!mine) this.toast(t, `⚑ ${m.by || 'a proctor'} · ${m.kind}${m.note ? `: ${m.note}` : ''}`);
      if (this.single === t) this.view.renderMarks();
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

  // Opens a tile (false when the wall is full); an open tile is just focused,
  // or shown large when the single view is on.
  open(s, clickedAt = performance.now()) {
    const old = this.tiles.get(s.sentinelId);
    if (old) {
      if (this.single && !old.node.hidden) this.openSingle(old);
      else old.node.focus();
      return true;
    }
    if (this.full) return false;
    const name = s.name || s.sentinelId.slice(0, 8);
    const video = el('video', { muted: true, playsinline: true, 'aria-label': `Live picture of ${name}` });
    const badge = el('div', { class: 'badge', role: 'status' });
    const age = el('span', { class: 'age' });
    const flag = el('span', { class: 'flags', hidden: true });
    const toast = el('div', { class: 'toast', role: 'status', hidden: true });
    const t = {
      id: s.sentinelId, name, sessionId: s.sessionId || null, node: null, video, badge, age, flag, toast,
      state: null, subscribed: false, onScreen: true, clickedAt, review: false,
      offline: s.online === false, offlineSince: s.online === false ? s.offlineSince || null : null,
    };
    const btn = (text, attrs, onclick) => el('button', { type: 'button', ...attrs, onclick: (e) => (e.stopPropagation(), onclick()) }, text);
    const screen = el('div', { class: 'screen' }, video, badge, flag, age, toast);
    screen.addEventListener('click', () => this.openSingle(t));
    screen.addEventListener('dblclick', () => this.fullscreen(t));
    t.node = el(
      'figure',
      { class: 'tile', 'data-id': t.id, tabindex: 0, 'aria-label': `${name}: Enter shows it large, M marks a moment` },
      screen,
      el(
        'figcaption',
        {},
        el('span', { class: 'name', title: name }, name),
        el(
          'span',
          { class: 'tools' },
          btn('Mark', { class: 'mark-btn', title: 'Mark this moment (M)' }, () => this.mark(t)),
          btn('Refresh picture', { title: 'Ask the sentinel for a full picture now' }, () => this.relay.send('proctor.keyframe.request', { sentinelId: t.id })),
          btn('History', {}, () => this.onHistory(s)),
          btn('✕', { 'aria-label': `Close ${name}`, title: 'Close' }, () => this.close(t.id))
        )
      )
    );
    t.node.addEventListener('mouseenter', () => (this.hover = t));
    t.node.addEventListener('mouseleave', () => this.hover === t && (this.hover = null));
    t.player = new LivePlayer(video, (state, detail) => this.setState(t, state, detail));
    this.tiles.set(t.id, t);
    this.grid.append(t.node);
    t.node.hidden = !matches(name, this.filter);
    this.layout();
    this.setState(t, s.online === false ? 'offline' : 'connecting');
    this.sync(t);
    this.seen.observe(t.node);
    if (this.single) this.openSingle(t);
    return true;
  }

  close(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    if (this.single === t) this.closeSingle();
    if (this.hover === t) this.hover = null;
    this.seen.unobserve(t.node);
    if (t.subscribed) this.relay.unsubscribe(id);
    clearTimeout(t.toastTimer);
    t.player.destroy();
    t.node.remove();
    this.tiles.delete(id);
    this.layout();
  }

  // Subscribed exactly while the tile can be seen; the single view's tile from
  // the oldest segment relay holds, so the proctor can go back over it. The
  // single view's tile is seen whenever the live view is (entering full screen
  // passes through a moment the observer calls out of sight: its buffer stays).
  sync(t) {
    const shown = t.onScreen || (this.single === t && !this.root.hidden);
    const want = shown && !document.hidden && !t.node.hidden;
    if (want === t.subscribed) return;
    t.subscribed = want;
    if (want) {
      this.loadMarks(t);
      if (t.review) t.player.catchUp();
      this.relay.subscribe(t.id, t.review ? 'oldest' : 'latest');
      if (t.state === 'paused') this.setState(t, t.offline ? 'offline' : this.relay.open ? 'connecting' : 'reconnecting');
    } else {
      this.relay.unsubscribe(t.id);
      t.player.teardown();
      if (t.state !== 'offline') this.setState(t, 'paused');
    }
  }

  setState(t, state, detail) {
    t.state = state;
    t.node.dataset.state = state;
    let text = LABELS[state];
    if (state === 'error' && detail) text = `error: ${detail.reason}`;
    if (state === 'offline' && t.offlineSince) text = `offline since ${fmtClock(t.offlineSince)}`;
    t.badge.textContent = text;
    t.badge.hidden = !text;
  }

  // Visible tiles share the wall: the grid's shape depends only on their number.
  layout() {
    const n = [...this.tiles.values()].filter((t) => !t.node.hidden).length;
    this.grid.dataset.count = n;
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.grid.style.setProperty('--cols', cols);
    this.grid.style.setProperty('--rows', Math.max(1, Math.ceil(n / cols)));
    this.empty.hidden = this.tiles.size > 0;
    this.onChange(this.tiles.size);
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    for (const t of this.tiles.values()) {
      t.node.hidden = !matches(t.name, this.filter);
      if (t.node.hidden && this.single === t) this.closeSingle();
      this.sync(t);
    }
    this.layout();
  }

  // Shown on each tile, every second: how old the picture is, or how far behind live.
  tick() {
    for (const t of this.tiles.values()) {
      const d = t.state === 'playing' ? t.player.delay() : null;
      const behind = t.state === 'playing' ? t.player.behindLive() : 0;
      const back = t.player.behind && behind >= 0.5;
      t.age.textContent = back ? `${behind.toFixed(1)} s behind live` : d == null ? '' : `delay ${(d / 1000).toFixed(1)} s`;
      t.age.title = back ? 'played from the last seconds relay holds: "Back to live" returns' : 'how old the picture is: from the sentinel\'s camera to this screen';
      t.age.classList.toggle('behind', back);
    }
  }

  // Marks made before the tile subscribed (or while it was paused): relay only
  // sends those made while it is subscribed.
  loadMarks(t) {
    const now = performance.now();
    if (now - (t.marksAt || -Infinity) < MARKS_AGAIN_MS) return;
    t.marksAt = now;
    this.marks.load(t.id, t.sessionId).then(() => this.flags(t));
  }

  // The flag on the tile: how many marks its session has.
  flags(t) {
    const n = this.marks.of(t.id, t.sessionId).length;
    t.flag.textContent = `⚑ ${n}`;
    t.flag.title = `${n} mark${n === 1 ? '' : 's'} in this session`;
    t.flag.hidden = n === 0;
  }

  toast(t, text) {
    t.toast.textContent = text;
    t.toast.hidden = false;
    clearTimeout(t.toastTimer);
    t.toastTimer = setTimeout(() => (t.toast.hidden = true), TOAST_MS);
  }

  mark(t) {
    this.markDialog.show({ sentinelId: t.id, name: t.name, at: t.state === 'playing' ? t.player.wallAt() : null });
  }

  visible() {
    return [...this.tiles.values()].filter((t) => !t.node.hidden);
  }

  // One stream large: the others are hidden, hence paused and unsubscribed.
  openSingle(t) {
    if (this.single === t) return;
    if (this.single) this.leave(this.single);
    this.single = t;
    this.root.classList.add('single');
    for (const x of this.tiles.values()) x.node.classList.toggle('selected', x === t);
    t.review = true;
    t.player.review(true);
    if (t.subscribed) {
      t.player.catchUp();
      this.relay.resubscribe(t.id, 'oldest');
    }
    this.view.show(t);
    t.node.focus({ preventScroll: true });
  }

  leave(t) {
    t.review = false;
    t.player.review(false);
    t.node.classList.remove('selected');
  }

  closeSingle() {
    const t = this.single;
    if (!t) return;
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    this.leave(t);
    this.single = null;
    this.root.classList.remove('single');
    this.view.hide();
    t.node.focus({ preventScroll: true });
  }

  // The next (dir 1) or previous (-1) visible tile, shown alone or focused.
  step(dir) {
    const list = this.visible();
    if (!list.length) return;
    const at = list.indexOf(this.single || this.tileOf(document.activeElement));
    const next = list[(at + dir + list.length) % list.length];
    if (this.single) this.openSingle(next);
    else next.node.focus();
  }

  fullscreen(t) {
    this.openSingle(t);
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (this.root.requestFullscreen) this.root.requestFullscreen().catch(() => {});
  }

  tileOf(node) {
    const fig = node && node.closest ? node.closest('.tile') : null;
    return fig ? this.tiles.get(fig.dataset.id) : null;
  }

  // Keys of the live view: M marks, F full screen, Enter large, arrows move,
  // Escape back to the wall. Not while typing, nor over an open dialog.
  key(e) {
    if (this.root.hidden || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || this.markDialog.open) return;
    const target = e.target.closest ? e.target : document.body;
    if (target.closest('textarea, select, dialog, [contenteditable], input:not([type="range"])')) return;
    if (target.type === 'range' && e.key.startsWith('Arrow')) return; // the scrub bar's own keys
    const t = this.single || this.tileOf(document.activeElement) || this.hover;
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (k === 'm' && t) this.mark(t);
    else if (k === 'f' && t) this.fullscreen(t);
    else if (k === 'Escape' && document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (k === 'Escape' && this.single) this.closeSingle();
    else if (k === 'ArrowRight' || k === 'ArrowDown') this.step(1);
    else if (k === 'ArrowLeft' || k === 'ArrowUp') this.step(-1);
    else if (k === 'Enter' && t && target === t.node && !this.single) this.openSingle(t);
    else return;
    e.preventDefault();
  }

  stop() {
    this.abort.abort();
    for (const id of [...this.tiles.keys()]) this.close(id);
    this.seen.disconnect();
  }

  // For tests and the benchmark: what each tile is doing.
  stats() {
    return [...this.tiles.values()].map((t) => {
      const q = t.video.getVideoPlaybackQuality ? t.video.getVideoPlaybackQuality() : {};
      const r = t.player.range();
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
        single: this.single === t,
        behind: t.player.behind,
        behindLive: t.player.behindLive(),
        range: r && [r.start, r.end],
        liveEdge: t.player.liveEdge(),
      };
    });
  }
}
