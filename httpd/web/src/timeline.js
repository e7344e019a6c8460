// The session timeline under the history player: a bar over the session's
// clock time with thumbnails (GET .../thumbs, one every 10 s, fetched with
// the Authorization header as the cells need them), the marks as flags
// (PROTOCOL.md section 8) and the gaps where the stream was offline (the
// listing's). Clicking the bar, a thumbnail or a flag asks the player to go
// there (onSeek with unix ms); the player moves the playhead (setPlayhead).
import { el, getJSON, headers } from './api.js';

const CELL_PX = 96; // the width a thumbnail is drawn at; as many cells as fit
const KIND_LABEL = { note: 'Note', suspicious: 'Suspicious', incident: 'Incident' };

// 14:02:11, local time.
export function fmtClock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export class Timeline {
  // onSeek(unixMs): the proctor chose a moment.
  constructor({ onSeek }) {
    this.onSeek = onSeek;
    this.from = 0;
    this.to = 1;
    this.thumbs = []; // [{ n, at }] from the listing
    this.gaps = [];
    this.marks = [];
    this.urls = new Map(); // n -> object URL of a fetched thumbnail
    this.loading = new Set();
    this.stats = { thumbsShown: 0, thumbsFailed: 0, firstAllShownMs: null };
    this.strip = el('div', { class: 'tl-thumbs', 'aria-hidden': 'true' });
    this.gapLayer = el('div', { class: 'tl-gaps' });
    this.flags = el('div', { class: 'tl-flags' });
    this.head = el('div', { class: 'tl-head' });
    this.hover = el('div', { class: 'tl-hover', hidden: true });
    this.bar = el(
      'div',
      {
        class: 'tl-bar',
        role: 'slider',
        tabindex: 0,
        'aria-label': 'Session time',
        'aria-valuemin': 0,
        onclick: (e) => this.onSeek(this.timeAtX(e.clientX)),
        onmousemove: (e) => this.showHover(e.clientX),
        onmouseleave: () => (this.hover.hidden = true),
        onkeydown: (e) => this.key(e),
      },
      this.gapLayer,
      this.head,
      this.hover
    );
    this.startLabel = el('span', { class: 'tl-start' });
    this.endLabel = el('span', { class: 'tl-end' });
    this.root = el(
      'div',
      { class: 'timeline', role: 'group', 'aria-label': 'Session timeline' },
      this.strip,
      el('div', { class: 'tl-track' }, this.bar, this.flags),
      el('div', { class: 'tl-axis' }, this.startLabel, this.endLabel)
    );
    this.resize = new ResizeObserver(() => this.drawThumbs());
    this.resize.observe(this.strip);
  }

  // A new session: its base path, its time span (unix ms) and what is known of it.
  open(base, from, to) {
    this.clear();
    this.base = base;
    this.openedAt = performance.now();
    this.stats = { thumbsShown: 0, thumbsFailed: 0, firstAllShownMs: null };
    this.span(from, to);
  }

  span(from, to) {
    this.from = from;
    this.to = Math.max(to, from + 1);
    this.startLabel.textContent = fmtClock(this.from);
    this.endLabel.textContent = fmtClock(this.to);
    this.bar.setAttribute('aria-valuemax', Math.round((this.to - this.from) / 1000));
    this.drawGaps();
    this.drawFlags();
    this.drawThumbs();
  }

  // GET .../thumbs: slots, gaps. A failure leaves the bar without pictures.
  async loadThumbs() {
    const base = this.base;
    try {
      const j = await getJSON(`${base}/thumbs`);
      if (base !== this.base) return;
      this.thumbs = j.thumbs || [];
      this.gaps = j.gaps || [];
      this.every = j.every;
      this.drawGaps();
      this.drawThumbs();
    } catch (e) {
      /* an httpd without thumbnails: the bar still works */
    }
  }

  // GET .../marks (PROTOCOL.md section 8), oldest first.
  async loadMarks() {
    const base = this.base;
    try {
      const list = await getJSON(`${base}/marks`);
      if (base !== this.base || !Array.isArray(list)) return;
      this.marks = list.slice().sort((a, b) => a.at - b.at);
      this.drawFlags();
    } catch (e) {
      /* no marks route: no flags */
    }
  }

  x(at) {
    return ((at - this.from) / (this.to - this.from)) * 100;
  }

  timeAtX(clientX) {
    const r = this.bar.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / Math.max(1, r.width)));
    return Math.round(this.from + f * (this.to - this.from));
  }

  showHover(clientX) {
    const at = this.timeAtX(clientX);
    this.hover.hidden = false;
    this.hover.textContent = fmtClock(at);
    this.hover.style.left = `${this.x(at)}%`;
  }

  key(e) {
    const step = { ArrowLeft: -10000, ArrowRight: 10000, PageDown: -60000, PageUp: 60000 }[e.key];
    if (step == null && e.key !== 'Home' && e.key !== 'End') return;
    e.preventDefault();
    const at = e.key === 'Home' ? this.from : e.key === 'End' ? this.to : (this.playhead ?? this.from) + step;
    this.onSeek(Math.min(this.to, Math.max(this.from, at)));
  }

  setPlayhead(at) {
    this.playhead = at;
    if (at == null) return;
    this.head.style.left = `${Math.min(100, Math.max(0, this.x(at)))}%`;
    this.bar.setAttribute('aria-valuenow', Math.round((at - this.from) / 1000));
    this.bar.setAttribute('aria-valuetext', fmtClock(at));
  }

  drawGaps() {
    this.gapLayer.replaceChildren(
      ...this.gaps.map((g) =>
        el('div', {
          class: 'tl-gap',
          title: `No video from ${fmtClock(g.from)} to ${fmtClock(g.to)} (the stream was offline)`,
          style: `left:${this.x(g.from)}%;width:${Math.max(0.2, this.x(g.to) - this.x(g.from))}%`,
        })
      )
    );
  }

  drawFlags() {
    this.flags.replaceChildren(
      ...this.marks
        .filter((m) => m.at >= this.from && m.at <= this.to)
        .map((m) => {
          const what = `${KIND_LABEL[m.kind] || m.kind} at ${fmtClock(m.at)} by ${m.by}${m.note ? `: ${m.note}` : ''}`;
          return el('button', {
            type: 'button',
            class: `tl-mark ${m.kind}`,
            'data-mark': m.markId,
            title: what,
            'aria-label': `Go to mark: ${what}`,
            style: `left:${this.x(m.at)}%`,
            onclick: (e) => {
              e.stopPropagation();
              this.onSeek(m.at);
            },
          });
        })
    );
  }

  // As many cells as fit; each shows the listed thumbnail nearest its middle,
  // if one lies within it (none in a gap).
  drawThumbs() {
    const width = this.strip.clientWidth;
    if (!width || !this.thumbs.length) {
      this.strip.replaceChildren();
      this.wanted = [];
      return;
    }
    const cells = Math.max(1, Math.floor(width / CELL_PX));
    const len = (this.to - this.from) / cells;
    const pick = [];
    let i = 0;
    for (let c = 0; c < cells; c++) {
      const lo = this.from + c * len;
      const mid = lo + len / 2;
      while (i + 1 < this.thumbs.length && Math.abs(this.thumbs[i + 1].at - mid) <= Math.abs(this.thumbs[i].at - mid)) i++;
      const t = this.thumbs[i];
      if (t.at >= lo - (this.every || 0) / 2 && t.at < lo + len + (this.every || 0) / 2 && !pick.some((p) => p.t.n === t.n)) pick.push({ c, t });
    }
    this.wanted = pick.map((p) => p.t.n);
    this.strip.replaceChildren(
      ...pick.map(({ c, t }) => {
        const img = el('img', {
          alt: '',
          'data-n': t.n,
          title: fmtClock(t.at),
          style: `left:${(c / cells) * 100}%;width:${100 / cells}%`,
          onclick: () => this.onSeek(t.at),
        });
        this.fill(img, t.n);
        return img;
      })
    );
  }

  async fill(img, n) {
    const url = this.urls.get(n);
    if (url) {
      img.src = url;
      this.shown();
      return;
    }
    if (this.loading.has(n)) return;
    this.loading.add(n);
    const base = this.base;
    try {
      const res = await fetch(`${base}/thumbs/${n}.jpg`, { headers: headers() });
      if (!res.ok) throw new Error(`${res.status}`);
      const blob = await res.blob();
      if (base !== this.base) return;
      this.urls.set(n, URL.createObjectURL(blob));
      for (const i of this.strip.querySelectorAll(`img[data-n="${n}"]`)) i.src = this.urls.get(n);
      this.shown();
    } catch (e) {
      this.stats.thumbsFailed++;
    } finally {
      this.loading.delete(n);
    }
  }

  // For the tests and the benchmark: when every cell's picture first arrived.
  shown() {
    this.stats.thumbsShown = this.wanted.filter((n) => this.urls.has(n)).length;
    if (this.stats.firstAllShownMs == null && this.wanted.length && this.stats.thumbsShown === this.wanted.length) {
      this.stats.firstAllShownMs = performance.now() - this.openedAt;
    }
  }

  clear() {
    for (const u of this.urls.values()) URL.revokeObjectURL(u);
    this.urls.clear();
    this.thumbs = [];
    this.gaps = [];
    this.marks = [];
    this.base = null;
    this.playhead = null;
    this.strip.replaceChildren();
    this.gapLayer.replaceChildren();
    this.flags.replaceChildren();
  }
}
