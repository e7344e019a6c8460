// History: a sentinel's sessions from httpd, playback of one (HLS through
// hls.js from playlist.m3u8; Safari plays HLS itself) with seeking, and
// export.mp4 of the whole session or of a chosen range.
import Hls from 'hls.js';
import { el, fmtDuration, fmtTime, getJSON, headers, sentinelPath, withToken } from './api.js';

export class History {
  constructor(root, getSentinels) {
    this.root = root;
    this.getSentinels = getSentinels;
    this.hls = null;
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
    this.title = el('h2', {}, 'No session chosen');
    this.from = el('input', { type: 'text', id: 'exp-from', value: '0:00', size: 8, 'aria-label': 'Export from (m:ss into the session)' });
    this.to = el('input', { type: 'text', id: 'exp-to', value: '', size: 8, 'aria-label': 'Export to (m:ss into the session)' });
    this.whole = el('a', { class: 'button', id: 'exp-whole', download: true }, 'Download session');
    this.range = el('a', { class: 'button', id: 'exp-range', download: true }, 'Download range');
    const mark = (input) => el('button', { type: 'button', onclick: () => {
      input.value = fmtDuration(this.video.currentTime * 1000);
      this.updateRange();
    } }, 'here');
    this.player = el(
      'section',
      { class: 'playback', hidden: true },
      this.title,
      el('div', { class: 'screen' }, this.video),
      el(
        'div',
        { class: 'export' },
        this.whole,
        el('label', { for: 'exp-from' }, 'from'), this.from, mark(this.from),
        el('label', { for: 'exp-to' }, 'to'), this.to, mark(this.to),
        this.range
      )
    );
    this.from.addEventListener('input', () => this.updateRange());
    this.to.addEventListener('input', () => this.updateRange());
    root.append(
      el('div', { class: 'hist-head' }, el('label', { for: 'hist-sentinel' }, 'Sentinel'), this.pick, this.msg),
      el('div', { class: 'hist-body' }, el('div', { class: 'list' }, table), this.player)
    );
  }

  // Shows a sentinel's sessions (the select lists every sentinel known).
  async show(id) {
    const all = this.getSentinels();
    this.pick.replaceChildren(...all.map((s) => el('option', { value: s.sentinelId }, s.name || s.sentinelId)));
    if (id) this.pick.value = id;
    if (this.pick.value) await this.load(this.pick.value);
    else this.msg.textContent = 'No sentinel known yet.';
  }

  async load(id) {
    this.sentinelId = id;
    this.msg.textContent = 'Loading sessions…';
    this.rows.replaceChildren();
    let sessions;
    try {
      sessions = await getJSON(sentinelPath(id, '/sessions'));
    } catch (e) {
      this.msg.textContent = `Sessions not available: ${e.message}`;
      return;
    }
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
  }

  async play(s) {
    const base = sentinelPath(this.sentinelId, `/sessions/${encodeURIComponent(s.sessionId)}`);
    this.session = s;
    this.base = base;
    this.player.hidden = false;
    this.title.textContent = `Session of ${fmtTime(s.startTime)}${s.endTime == null ? ' (live)' : ''}`;
    this.whole.href = withToken(`${base}/export.mp4`);
    this.to.value = fmtDuration(s.durationMs);
    // Media time -> unix ms for the range export: the segment list gives each one's start.
    try {
      this.segments = (await getJSON(`${base}/segments`)).segments;
    } catch (e) {
      this.segments = [];
    }
    this.updateRange();
    this.stop();
    const url = `${base}/playlist.m3u8`;
    if (Hls.isSupported()) {
      this.hls = new Hls({ xhrSetup: (xhr) => Object.entries(headers()).forEach(([k, v]) => xhr.setRequestHeader(k, v)) });
      this.hls.on(Hls.Events.ERROR, (ev, d) => {
        if (d.fatal) this.msg.textContent = `Playback failed: ${d.details}`;
      });
      this.hls.loadSource(url);
      this.hls.attachMedia(this.video);
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = withToken(url);
    } else {
      this.msg.textContent = 'This browser plays neither HLS nor MSE.';
      return;
    }
    this.video.play().catch(() => {});
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
    if (this.hls) this.hls.destroy();
    this.hls = null;
  }
}
