// httpd's HTTP API (PROTOCOL.md section 6), on the page's own origin.
let token = '';

export function setToken(t) {
  token = t;
}

export function headers() {
  return { Authorization: `Bearer ${token}` };
}

export async function getJSON(path) {
  const res = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (!res.ok) {
    let text = res.statusText;
    try {
      text = (await res.json()).error || text;
    } catch (e) {
      /* not JSON */
    }
    throw new Error(`${res.status} ${text}`);
  }
  return res.json();
}

export function sentinelPath(id, rest = '') {
  return `/api/sentinels/${encodeURIComponent(id)}${rest}`;
}

// For links the browser follows itself (downloads): the token goes in the query.
export function withToken(path, params = {}) {
  const q = new URLSearchParams({ ...params, token });
  return `${path}?${q}`;
}

export function fmtBitrate(bps) {
  if (!bps) return '0 kbit/s';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

export function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

// 2026-11-23 19:41:44, local time.
export function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
