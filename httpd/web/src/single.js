// The single view: one live tile large (the wall hides the others), a bar
// under it to go back over relay's memory buffer ("Back 10 s", a scrub bar,
// "Back to live"), and a panel with its name, state, picture age and marks.
// The tile's own LivePlayer keeps that buffer while it is shown here.
import { el } from './api.js';
import { fmtClock, markItem } from './marks.js';

const UPDATE_MS = 250;
const BACK_S = 10;

export class SingleView {
  constructor(root, wall) {
    this.wall = wall;
    this.t = null;
    this.dragging = false;
    const btn = (text, attrs, onclick) => el('button', { type: 'button', ...attrs, onclick }, text);
    this.backBtn = btn(`Back ${BACK_S} s`, { class: 'back', title: `Play from ${BACK_S} s earlier` }, () => this.player().back(BACK_S));
    this.liveBtn = btn('Back to live', { class: 'golive' }, () => this.player().live());
    this.scrub = el('input', { type: 'range', class: 'scrub', min: 0, max: 1, step: 0.1, value: 1, 'aria-label': 'Position in the last seconds relay holds' });
    this.ticks = el('div', { class: 'scrub-marks', 'aria-hidden': 'true' });
    this.where = el('span', { class: 'where', role: 'status' });
    this.bar = el(
      'div',
      { class: 'single-bar', hidden: true },
      this.backBtn,
      el('div', { class: 'scrub-wrap' }, this.scrub, this.ticks),
      this.liveBtn,
      this.where
    );
    this.scrub.addEventListener('pointerdown', () => (this.dragging = true));
    this.scrub.addEventListener('pointerup', () => (this.dragging = false));
    this.scrub.addEventListener('input', () => this.player().seek(Number(this.scrub.value)));
    this.name = el('h2', { class: 'single-name' });
    this.state = el('dd');
    this.age = el('dd');
    this.list = el('ol', { class: 'marks-list', 'aria-label': 'Marks of this session' });
    this.panel = el(
      'aside',
      { class: 'single-panel', hidden: true, 'aria-label': 'The stream shown large' },
      this.name,
      el('dl', {}, el('dt', {}, 'State'), this.state, el('dt', {}, 'Picture age'), this.age),
      el(
        'div',
        { class: 'single-tools' },
        btn('Mark (M)', { class: 'mark-btn' }, () => this.t && wall.mark(this.t)),
        btn('Full screen (F)', {}, () => this.t && wall.fullscreen(this.t)),
        btn('Back to the wall (Esc)', { class: 'to-wall' }, () => wall.closeSingle())
      ),
      el('h3', {}, 'Marks'),
      this.list,
      el('p', { class: 'hint' }, '← → the other streams · M mark · F full screen · Esc the wall')
    );
    root.append(this.bar, this.panel);
  }

  player() {
    return this.t.player;
  }

  show(t) {
    this.t = t;
    this.bar.hidden = false;
    this.panel.hidden = false;
    this.renderMarks();
    this.update();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.update(), UPDATE_MS);
  }

  hide() {
    clearInterval(this.timer);
    this.t = null;
    this.bar.hidden = true;
    this.panel.hidden = true;
  }

  update() {
    const t = this.t;
    if (!t) return;
    const p = t.player;
    const r = p.range();
    const behind = p.behindLive();
    const playing = t.state === 'playing';
    this.name.textContent = t.name;
    this.state.textContent = !playing ? t.badge.textContent || t.state : p.behind ? 'playing, behind live' : 'live';
    const d = playing ? p.delay() : null;
    this.age.textContent = d == null ? '–' : `${(d / 1000).toFixed(1)} s`;
    const held = r ? r.end - r.start : 0;
    this.backBtn.disabled = !playing || held < 1;
    this.liveBtn.disabled = !p.behind;
    this.scrub.disabled = !playing || held < 1;
    if (r && !this.dragging) {
      this.scrub.min = r.start.toFixed(2);
      this.scrub.max = r.end.toFixed(2);
      this.scrub.value = Math.min(r.end, t.video.currentTime).toFixed(2);
    }
    const text = p.behind ? `${behind.toFixed(1)} s behind live` : 'live';
    this.scrub.setAttribute('aria-valuetext', text);
    this.where.textContent = `${text} · ${Math.round(held)} s held`;
    this.where.classList.toggle('behind', p.behind);
    this.placeTicks(r);
  }

  // Marks inside the held range as ticks over the scrub bar.
  placeTicks(r) {
    const t = this.t;
    const ticks = [];
    if (r && r.end > r.start) {
      for (const m of this.wall.marks.of(t.id, t.sessionId)) {
        const at = t.player.mediaAt(m.at);
        if (at == null || at < r.start || at > r.end) continue;
        ticks.push(el('span', { class: `tick kind-${m.kind}`, style: `left: ${((100 * (at - r.start)) / (r.end - r.start)).toFixed(2)}%`, title: `${fmtClock(m.at)} ${m.kind}` }));
      }
    }
    this.ticks.replaceChildren(...ticks);
  }

  renderMarks() {
    const t = this.t;
    if (!t) return;
    const marks = this.wall.marks.of(t.id, t.sessionId);
    const pick = (m) => {
      const at = t.player.mediaAt(m.at);
      if (at != null) t.player.seek(at);
    };
    this.list.replaceChildren(...marks.map((m) => markItem(m, pick)));
    if (!marks.length) this.list.append(el('li', { class: 'empty' }, 'No mark yet: M marks the picture shown.'));
  }
}
