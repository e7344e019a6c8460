// GETs a list of URLs one after the other with Node's own clients, the way an
// application would: `http` with its default (pooling, keep-alive) agent, or
// the built-in `fetch` (undici). Used by tests/integration/test_clients.py.
// Node 19 made the default agent keep connections alive; on an older Node
// (Debian 12 has 18) an agent with keepAlive stands in for it, so that the
// pooling that once met "socket hang up" is what is tested everywhere.
//   node node_get.mjs http|fetch REQUESTS.json
// REQUESTS.json: [{ "url": "...", "headers": { ... } }]. Prints one JSON
// object: { results: [{ status, headers, body (base64) }], connects }, where
// connects counts the TCP connections the client opened.
import dc from 'node:diagnostics_channel';
import fs from 'node:fs';
import http from 'node:http';

const [mode, file] = process.argv.slice(2);
const requests = JSON.parse(fs.readFileSync(file, 'utf8'));
let connects = 0;
const agent = http.globalAgent.keepAlive ? http.globalAgent : new http.Agent({ keepAlive: true });

function viaHttp({ url, headers }) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('socket', () => {
      if (!req.reusedSocket) connects++;
    });
    req.on('error', reject);
  });
}

async function viaFetch({ url, headers }) {
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: Object.fromEntries(res.headers), body };
}

if (mode === 'fetch') dc.subscribe('undici:client:connected', () => connects++);
const get = mode === 'fetch' ? viaFetch : viaHttp;
const results = [];
try {
  for (const r of requests) {
    const res = await get(r);
    results.push({ status: res.status, headers: res.headers, body: res.body.toString('base64') });
  }
} catch (e) {
  console.error(`${mode}: ${e.stack || e}`);
  process.exit(1);
}
// The pooled sockets would keep the process alive: exit once the line is out.
process.stdout.write(JSON.stringify({ results, connects }) + '\n', () => process.exit(0));
