// Plays an HLS playlist with hls.js in Debian's chromium (through
// playwright-core, launched as tests/browser/lib.mjs does) and prints what the
// page found (clients/index.html) plus, from the DevTools protocol, how many
// TCP connections chromium used for httpd's answers.
//   node hls_play.mjs PAGE_URL PLAYLIST_URL
import { launch } from '../../browser/lib.mjs';

const [pageUrl, playlistUrl] = process.argv.slice(2);
const browser = await launch();
let out;
try {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  const connections = new Set();
  let reused = 0;
  let responses = 0;
  cdp.on('Network.responseReceived', ({ response }) => {
    if (!response.url.includes('/api/')) return;
    responses++;
    connections.add(response.connectionId);
    if (response.connectionReused) reused++;
  });
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  await page.goto(pageUrl);
  const res = await page.evaluate(([url]) => window.playAll(url, 1, 30000), [playlistUrl]);
  out = { ...res, responses, connections: connections.size, reused, console: logs.slice(-20) };
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
