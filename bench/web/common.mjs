// What the page benchmarks share: a static server for web/www (with a chosen pkg/, stored
// .br/.gz copies and paced responses) and a headless Chromium with a fresh profile.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

const here = path.dirname(new URL(import.meta.url).pathname);
export const repo = path.resolve(here, '../..');
const www = path.join(repo, 'web/www');
const { chromium } = createRequire(path.join(repo, 'tests/web/package.json'))('playwright-core');
const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

// Writes `body` at `mbps` megabits per second in 16 KiB pieces (0: at once).
async function paced(res, body, mbps) {
  if (!mbps) return res.end(body);
  const piece = 16384;
  const t0 = performance.now();
  for (let at = 0; at < body.length; at += piece) {
    if (!res.write(body.subarray(at, at + piece))) await new Promise((r) => res.once('drain', r));
    const due = ((at + piece) * 8) / (mbps * 1e3); // ms
    const wait = due - (performance.now() - t0);
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
  res.end();
}

/**
 * Serves web/www on 127.0.0.1 with `pkg` as its pkg/ (default web/www/pkg); sends FILE.br or
 * FILE.gz for FILE when `encoding` (br, gzip) asks for it, the browser accepts it and the copy
 * exists; paces responses at `mbps`; adds the bytes sent to `stats.bytes`. Resolves to the server.
 */
export function serve({ pkg = path.join(www, 'pkg'), encoding = 'none', mbps = 0, stats = { bytes: 0 } } = {}) {
  const server = http.createServer(async (req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    let file = url.startsWith('/pkg/') ? path.join(pkg, url.slice(5)) : path.join(www, url);
    if (file.endsWith('/')) file += 'index.html';
    if (!(file.startsWith(www) || file.startsWith(pkg)) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404);
      return res.end('not found');
    }
    const headers = { 'content-type': MIME[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' };
    const ext = { br: '.br', gzip: '.gz' }[encoding];
    if (ext && String(req.headers['accept-encoding'] || '').includes(encoding) && fs.existsSync(file + ext)) {
      file += ext;
      headers['content-encoding'] = encoding;
      headers.vary = 'accept-encoding';
    }
    const body = fs.readFileSync(file);
    headers['content-length'] = body.length;
    stats.bytes += body.length;
    res.writeHead(200, headers);
    await paced(res, body, mbps);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Headless Debian Chromium with a fresh profile (nothing cached). */
export function launch() {
  return chromium.launchPersistentContext(fs.mkdtempSync('/tmp/saad-bench-'), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: ['--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Opens the page on `backend` and waits until it is usable; throws the page's error if any. */
export async function openPage(browser, server, backend = 'cpu') {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/?backend=${backend}`);
  await page.waitForFunction(() => document.body.dataset.ready === '1' || !document.getElementById('error').hidden, null, { timeout: 300_000 });
  const error = await page.evaluate(() => document.getElementById('error').textContent);
  if (error) throw new Error(error);
  return page;
}
