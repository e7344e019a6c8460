// A small line chart of the last five minutes of one figure, drawn on a
// canvas (no chart library): the time axis ends at the newest sample, so the
// line moves left as samples come in; the vertical scale follows the largest
// value in the window. Samples are kept while the chart is out of sight and
// drawn when it shows.
import { el } from './api.js';

export const WINDOW_MS = 5 * 60 * 1000;

export class Chart {
  // label: what it shows ("CPU"); fmt: a value as text; min: the least top of the scale.
  constructor({ label, fmt, min = 1, color = '#58a6ff', width = 260, height = 48 }) {
    this.label = label;
    this.fmt = fmt;
    this.min = min;
    this.color = color;
    this.w = width;
    this.h = height;
    this.samples = []; // [t ms, value], oldest first
    this.draws = 0;
    this.canvas = el('canvas', { role: 'img', width, height, style: `width:${width}px;height:${height}px` });
    this.value = el('span', { class: 'chart-value' });
    this.node = el('figure', { class: 'chart' }, el('figcaption', {}, el('span', { class: 'chart-label' }, label), this.value), this.canvas);
  }

  add(t, v) {
    if (!Number.isFinite(v)) return;
    const last = this.samples[this.samples.length - 1];
    if (last && t <= last[0]) return; // the same push twice (operator.stats and the second's push)
    this.samples.push([t, v]);
    while (this.samples.length && this.samples[0][0] < t - WINDOW_MS) this.samples.shift();
    this.value.textContent = this.fmt(v);
  }

  // A gap in the line: the stage was down, or the page lost the server.
  gap(t) {
    const last = this.samples[this.samples.length - 1];
    if (last && last[1] !== null) this.samples.push([t, null]);
  }

  draw() {
    const { canvas, w, h } = this;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pts = this.samples;
    const vals = pts.map((p) => p[1]).filter((v) => v !== null);
    const top = Math.max(this.min, ...vals) * 1.15;
    const end = pts.length ? pts[pts.length - 1][0] : Date.now();
    const x = (t) => w - ((end - t) / WINDOW_MS) * w;
    const y = (v) => h - 2 - (v / top) * (h - 4);
    // a line each minute, and the scale's top
    g.strokeStyle = '#2c343c';
    g.lineWidth = 1;
    g.beginPath();
    for (let m = 1; m < 5; m++) {
      const xm = Math.round(x(end - m * 60000)) + 0.5;
      g.moveTo(xm, 0);
      g.lineTo(xm, h);
    }
    g.stroke();
    g.fillStyle = '#9aa5b1';
    g.font = '10px system-ui, sans-serif';
    g.fillText(this.fmt(top / 1.15), 3, 11);
    g.strokeStyle = this.color;
    g.fillStyle = `${this.color}33`;
    g.lineWidth = 1.5;
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        g.beginPath();
        run.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
        g.stroke();
        g.lineTo(x(run[run.length - 1][0]), h);
        g.lineTo(x(run[0][0]), h);
        g.closePath();
        g.fill();
      }
      run = [];
    };
    for (const p of pts) {
      if (p[1] === null) flush();
      else run.push(p);
    }
    flush();
    const now = vals.length ? this.fmt(vals[vals.length - 1]) : 'no data';
    canvas.setAttribute('aria-label', `${this.label}, last five minutes: now ${now}, at most ${vals.length ? this.fmt(Math.max(...vals)) : 'no data'}`);
    this.draws++;
  }
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}
