// History: a sentinel's sessions from httpd, playback of one (HLS through
// hls.js from playlist.m3u8; Safari plays HLS itself) under its timeline
// (timeline.js: thumbnails, marks, gaps), at 0.5x to 4x, stepping from mark
// to mark, with the clock time next to the media time; export.mp4 of the
// whole session or of a chosen range. A session opens at its start, a live
// one too (not at its live edge), or at the moment the proctor came from
// (show(id, { at })). The player stays muted.
import Hls from 'hls.js';
import { el, fmtDuration, fmtTime, getJSON, headers, sentinelPath, withToken } from './api.js';
import { Timeline, fmtClock } from './timeline.js';

const RATES = [0.5, 1, 2, 4];
const LIVE_REFRESH_MS = 5000; // a live session's segments, thumbnails and marks
const MARK_SLACK_MS = 1500; // "previous mark" right after one goes to the one before

export class History {
  constructor(root, getSentinels) {
    this.root = root;
    this.getSentinels = getSentinels;
    this.hls = null;
    this.rate = 1;
    this.pick = el('select', { id: 'hist-sentinel', onchange: () => this.load(this.pick.value) });
    this.msg = el('p', { class: 'msg', role: 'status' });
    this.rows = el('tbody');
    const table = el(
      'table',
      { class: 'sessions' },
      el('thead', {}, el('tr', {}, ...['Started', 'Duration', 'Size', ''].map((h) => el('th', {}, h)))),
      this.rows
    );
    this.video = el('video', { controls: true, playsinline: true, muted: true, 'aria-label': 'Recorded session' });
    // No sound in history: a control that unmutes is undone at once.
    this.video.addEventListener('volumechange', () => {
      if (!this.video.muted) this.video.muted = true;
    });
    this.video.addEventListener('timeupdate', () => this.tick());
    this.video.addEventListener('seeked', () => this.tick());
    this.video.addEventListener('ratechange', () => this.showRate());
    this.title = el('h2', {}, 'No session chosen');
    this.timeline = new Timeline({ onSeek: (at) => this.seekClock(at) });
    this.clock = el('span', { class: 'tl-clock', title: 'Clock time of the picture (the sentinel\'s clock)' });
    this.media = el('span', { class: 'tl-media', title: 'Time into the recording' });
    this.rateButtons = RATES.map((r) =>
      el('button', { type: 'button', class: 'rate', 'data-rate': r, 'aria-pressed': String(r === 1), onclick: () => this.setRate(r) }, `${r}×`)
    );
    this.prevMark = el('button', { type: 'button', class: 'mark-prev', title: 'Previous mark ([)', onclick: () => this.stepMark(-1) }, '◀ Mark');
    this.nextMark = el('button', { type: 'button', class: 'mark-next', title: 'Next mark (])', onclick: () => this.stepMark(1) }, 'Mark ▶');
    const controls = el(
      'div',
      { class: 'tl-controls' },
      el('span', { class: 'tl-now', role: 'status', 'aria-live': 'off' }, this.clock, this.media),
      el('span', { class: 'rates', role: 'group', 'aria-label': 'Playback speed' }, ...this.rateButtons),
      el('span', { class: 'marks-step' }, this.prevMark, this.nextMark)
    );
    this.from = el('input', { type: 'text', id: 'exp-from', value: '0:00', size: 8, 'aria-label': 'Export from (m:ss into the session)' });
    this.to = el('input', { type: 'text', id: 'exp-to', value: '', size: 8, 'aria-label': 'Export to (m:ss into the session)' });
    this.whole = el('a', { class: 'button', id: 'exp-whole', download: true }, 'Download session');
    this.range = el('a', { class: 'button', id: 'exp-range', download: true }, 'Download range');
    const here = (input) => el('button', { type: 'button', onclick: () => {
      input.value = fmtDuration(this.video.currentTime * 1000);
      this.updateRange();
    } }, 'here');
    this.player = el(
      'section',
      { class: 'playback', hidden: true },
      this.title,
      el('div', { class: 'screen' }, this.video),
      this.timeline.root,
      controls,
      el(
        'div',
        { class: 'export' },
        this.whole,
        el('label', { for: 'exp-from' }, 'from'), this.from, here(this.from),
        el('label', { for: 'exp-to' }, 'to'), this.to, here(this.to),
        this.range
      )
    );
    this.from.addEventListener('input', () => this.updateRange());
    this.to.addEventListener('input', () => this.updateRange());
    this.player.addEventListener('keydown', (e) => {
      if (e.target.tagName === 'INPUT') return;
      if (e.key === '[' || e.key === ']') {
        e.preventDefault();
        this.stepMark(e.key === ']' ? 1 : -1);
      }
    });
    root.append(
      el('div', { class: 'hist-head' }, el('label', { for: 'hist-sentinel' }, 'Sentinel'), this.pick, this.msg),
      el('div', { class: 'hist-body' }, el('div', { class: 'list' }, table), this.player)
    );
  }

  // Shows a sentinel's sessions (the select lists every sentinel known). With
  // from.at (unix ms), the session holding that moment plays from there.
  async show(id, from = null) {
    const all = this.getSentinels();
    this.pick.replaceChildren(...all.map((s) => el('option', { value: s.sentinelId }, s.name || s.sentinelId)));
    if (id) this.pick.value = id;
    if (!this.pick.value) {
      this.msg.textContent = 'No sentinel known yet.';
      return;
    }
    const sessions = await this.load(this.pick.value);
    if (from && from.at && sessions && sessions.length) {
      const holds = (s) => s.startTime <= from.at && (s.endTime == null || from.at <= s.endTime);
      const s = sessions.find((x) => x.sessionId === from.sessionId && holds(x)) || sessions.find(holds) || sessions[0];
      await this.play(s, from.at);
    }
  }

  // The sessions of sentinel id; null when it failed or a later load
  // (another choice in the list) took its place.
  async load(id) {
    const ticket = (this.loads = (this.loads || 0) + 1);
    this.sentinelId = id;
    this.msg.textContent = 'Loading sessions…';
    this.rows.replaceChildren();
    let sessions;
    try {
      sessions = await getJSON(sentinelPath(id, '/sessions'));
    } catch (e) {
      if (ticket === this.loads) this.msg.textContent = `Sessions not available: ${e.message}`;
      return null;
    }
    if (ticket !== this.loads) return null;
    this.msg.textContent = sessions.length ? '' : 'No recorded session.';
    sessions.sort((a, b) => b.startTime - a.startTime);
    for (const s of sessions) {
      const play = el('button', { type: 'button', class: 'play', onclick: () => this.play(s) }, 'Play');
      this.rows.append(
        el(
          'tr',
          { 'data-session': s.sessionId },
          el('td', { title: s.endTime == null ? 'still recording' : `ended ${fmtTime(s.endTime)}` }, fmtTime(s.startTime)),
          el('td', {}, `${fmtDuration(s.durationMs)}${s.endTime == null ? ' (live)' : ''}`),
          el('td', { title: `${s.segments} segments` }, `${(s.bytes / 1e6).toFixed(1)} MB`),
          el('td', {}, play)
        )
      );
    }
    return sessions;
  }

  // Plays s from its start, or from the clock time at (unix ms).
  async play(s, at = null) {
    const base = sentinelPath(this.sentinelId, `/sessions/${encodeURIComponent(s.sessionId)}`);
    this.stop();
    this.session = s;
    this.base = base;
    this.player.hidden = false;
    this.title.textContent = `Session of ${fmtTime(s.startTime)}${s.endTime == null ? ' (live)' : ''}`;
    this.whole.href = withToken(`${base}/export.mp4`);
    this.to.value = fmtDuration(s.durationMs);
    this.timeline.open(base, s.startTime, s.endTime ?? Date.now());
    await this.loadSegments();
    if (this.base !== base) return;
    this.spanTimeline();
    this.timeline.loadThumbs();
    this.timeline.loadMarks();
    this.updateRange();
    const url = `${base}/playlist.m3u8`;
    const start = at != null ? this.mediaAt(at) : 0;
    this.video.muted = true;
    if (Hls.isSupported()) {
      // startPosition: a live (EVENT) playlist would otherwise open at its live edge.
      this.hls = new Hls({ startPosition: start, xhrSetup: (xhr) => Object.entries(headers()).forEach(([k, v]) => xhr.setRequestHeader(k, v)) });
      this.hls.on(Hls.Events.ERROR, (ev, d) => {
        if (d.fatal) this.msg.textContent = `Playback failed: ${d.details}`;
      });
      this.hls.loadSource(url);
      this.hls.attachMedia(this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = withToken(url);
      this.video.addEventListener('loadedmetadata', () => (this.video.currentTime = start), { once: true });
    } else {
      this.msg.textContent = 'This browser plays neither HLS nor MSE.';
      return;
    }
    this.video.playbackRate = this.rate;
    this.video.defaultPlaybackRate = this.rate;
    this.video.play().catch(() => {});
    if (s.endTime == null) this.refresh = setInterval(() => this.refreshLive(), LIVE_REFRESH_MS);
    this.tick();
  }

  // The segment list maps media time (what the playlist plays: each segment's
  // duration after the other from the first join point, as its EXTINFs) to
  // clock time (each segment's startTime), across gaps.
  async loadSegments() {
    let segs = [];
    try {
      segs = (await getJSON(`${this.base}/segments`)).segments;
    } catch (e) {
      /* no listing: times stay unknown */
    }
    const first = segs.findIndex((g) => g.keyframe);
    let t = 0;
    this.map = (first < 0 ? [] : segs.slice(first)).map((g) => {
      const m = { media: t, at: g.startTime, dur: g.duration };
      t += g.duration;
      return m;
    });
    this.segments = segs;
  }

  async refreshLive() {
    const base = this.base;
    await this.loadSegments();
    if (base !== this.base) return;
    this.spanTimeline();
    this.timeline.loadThumbs();
    this.timeline.loadMarks();
  }

  // The bar spans the session (now, while it is live) and every segment in it.
  spanTimeline() {
    const s = this.session;
    const segs = this.segments || [];
    const first = segs[0];
    const last = segs[segs.length - 1];
    this.timeline.span(
      Math.min(s.startTime, first ? first.startTime : s.startTime),
      Math.max(s.endTime ?? Date.now(), last ? last.startTime + last.duration : 0)
    );
  }

  // Media seconds -> unix ms; null before anything is known.
  clockAt(t = this.video.currentTime) {
    const ms = t * 1000;
    const m = this.map || [];
    if (!m.length) return null;
    let lo = 0;
    let hi = m.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (m[mid].media <= ms) lo = mid;
      else hi = mid - 1;
    }
    return Math.round(m[lo].at + Math.min(ms - m[lo].media, m[lo].dur));
  }

  // Unix ms -> media seconds: inside a segment exactly; in a gap, the first
  // picture after it; before the first join point, 0.
  mediaAt(at) {
    const m = this.map || [];
    for (const x of m) {
      if (at < x.at) return x.media / 1000;
      if (at < x.at + x.dur) return (x.media + (at - x.at)) / 1000;
    }
    const last = m[m.length - 1];
    return last ? (last.media + last.dur) / 1000 : 0;
  }

  seekClock(at) {
    if (!this.map || !this.map.length) return;
    this.video.currentTime = this.mediaAt(at);
    this.timeline.setPlayhead(at);
    this.tick();
  }

  stepMark(dir) {
    const now = this.clockAt();
    const marks = this.timeline.marks;
    if (now == null || !marks.length) return;
    const m = dir > 0 ? marks.find((x) => x.at > now + 250) : [...marks].reverse().find((x) => x.at < now - MARK_SLACK_MS);
    if (m) this.seekClock(m.at);
  }

  setRate(r) {
    this.rate = r;
    this.video.defaultPlaybackRate = r;
    this.video.playbackRate = r;
    this.showRate();
  }

  showRate() {
    for (const b of this.rateButtons) b.setAttribute('aria-pressed', String(Number(b.dataset.rate) === this.video.playbackRate));
  }

  // The clock time next to the media time, and the playhead on the bar.
  tick() {
    const at = this.clockAt();
    this.clock.textContent = at == null ? '' : fmtClock(at);
    const total = this.session ? this.session.durationMs : 0;
    this.media.textContent = `${fmtDuration(this.video.currentTime * 1000)} / ${fmtDuration(Math.max(total, (this.video.duration || 0) * 1000))}`;
    this.timeline.setPlayhead(at);
  }

  // m:ss (or h:mm:ss) into the session -> unix ms, through the segment list.
  toUnix(text) {
    const parts = text.trim().split(':').map(Number);
    if (!parts.length || parts.some((n) => !Number.isFinite(n))) return null;
    const secs = parts.reduce((acc, n) => acc * 60 + n, 0);
    let at = 0;
    for (const seg of this.segments || []) {
      const d = seg.duration / 1000;
      if (secs < at + d) return Math.round(seg.startTime + (secs - at) * 1000);
      at += d;
    }
    return this.session.startTime + secs * 1000;
  }

  updateRange() {
    const start = this.toUnix(this.from.value);
    const end = this.toUnix(this.to.value);
    const ok = start != null && end != null && end > start;
    this.range.toggleAttribute('aria-disabled', !ok);
    this.range.href = ok ? withToken(`${this.base}/export.mp4`, { start, end }) : '#';
  }

  stop() {
    clearInterval(this.refresh);
    this.refresh = null;
    if (this.hls) this.hls.destroy();
    this.hls = null;
  }
}
