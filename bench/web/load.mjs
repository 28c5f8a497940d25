// Load time of the page in headless Chromium: bytes sent, time until the page is usable (the
// engine started, models loaded, images drawn) and until the first attack's result is on screen,
// then one more (warm) attack and the batch view over 64 images, on the CPU backend. Each
// variant is a build of web/www/pkg.
//
//   node bench/web/load.mjs [--mbps 50] [--runs 3] [--encoding br|gzip|none] NAME=PKG_DIR ...
//
// The server is this script's own, on 127.0.0.1: it serves web/www with the variant's pkg/,
// sends FILE.br or FILE.gz in place of FILE when --encoding asks for it and the copy exists
// (as nginx's brotli_static/gzip_static do), and paces every response at --mbps megabits per
// second (0: as fast as it can) so that the download size counts as it would on a network.
// Every run starts a fresh browser profile (nothing cached). Prints a Markdown table and
// writes the raw runs to bench/web/out/load.json.
import fs from 'node:fs';
import path from 'node:path';
import { launch, openPage, serve } from './common.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const mbps = Number(opt('mbps', '50'));
const runs = Number(opt('runs', '3'));
const encoding = opt('encoding', 'br');
const variants = args.map((a) => {
  const [name, dir] = a.split('=');
  if (!name || !dir || !fs.existsSync(path.join(dir, 'saad_web_bg.wasm'))) {
    console.error(`bad variant "${a}": expected NAME=DIR with DIR/saad_web_bg.wasm (a build of web/www/pkg)`);
    process.exit(2);
  }
  return { name, dir: path.resolve(dir) };
});
if (!variants.length) {
  console.error('usage: node bench/web/load.mjs [--mbps 50] [--runs 3] [--encoding br|gzip|none] NAME=PKG_DIR ...');
  process.exit(2);
}

async function once(variant) {
  const stats = { bytes: 0 };
  const server = await serve({ pkg: variant.dir, encoding, mbps, stats });
  const browser = await launch();
  try {
    const t0 = Date.now();
    const page = await openPage(browser, server, 'cpu');
    const usable = Date.now() - t0;
    const attack = async () => {
      const before = await page.evaluate(() => document.getElementById('result').dataset.ms);
      await page.click('#attack-run');
      await page.waitForFunction((b) => document.getElementById('result').dataset.ms !== b, before, { timeout: 300_000 });
      return Number(await page.evaluate(() => document.getElementById('result').dataset.ms));
    };
    const first = await attack();
    const firstAt = Date.now() - t0;
    const warm = await attack();
    // Compiled code's speed on real work: the batch view over 64 images (PGD-10), twice.
    const batch = async () => {
      await page.evaluate(() => delete document.getElementById('batch-summary').dataset.ms);
      await page.click('#batch-run');
      await page.waitForFunction(() => document.getElementById('batch-summary').dataset.ms !== undefined, null, { timeout: 300_000 });
      return Number(await page.evaluate(() => document.getElementById('batch-summary').dataset.ms));
    };
    await batch();
    const batchMs = await batch();
    return { bytes: stats.bytes, usable_ms: usable, first_attack_done_ms: firstAt, first_attack_ms: first, warm_attack_ms: warm, batch64_ms: batchMs };
  } finally {
    await browser.close();
    server.close();
  }
}

const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
const results = [];
for (const variant of variants) {
  const wasm = fs.statSync(path.join(variant.dir, 'saad_web_bg.wasm')).size;
  const all = [];
  for (let i = 0; i < runs; i++) all.push(await once(variant));
  const m = (k) => median(all.map((r) => r[k]));
  results.push({ variant: variant.name, wasm_bytes: wasm, runs: all, median: Object.fromEntries(Object.keys(all[0]).map((k) => [k, m(k)])) });
  console.error(`${variant.name}: ${JSON.stringify(results.at(-1).median)}`);
}
const mb = (b) => (b / 1e6).toFixed(2);
console.log(`Served ${encoding === 'none' ? 'uncompressed' : `${encoding} where a copy exists`}, ${mbps ? `${mbps} Mbit/s` : 'unpaced'}, CPU backend, median of ${runs} fresh-profile runs:\n`);
console.log('| build | wasm (MB) | sent (MB) | page usable (s) | first attack on screen (s) | first attack (ms) | warm attack (ms) | batch of 64, PGD-10 (ms) |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const x = r.median;
  console.log(`| ${r.variant} | ${mb(r.wasm_bytes)} | ${mb(x.bytes)} | ${(x.usable_ms / 1000).toFixed(2)} | ${(x.first_attack_done_ms / 1000).toFixed(2)} | ${x.first_attack_ms.toFixed(0)} | ${x.warm_attack_ms.toFixed(1)} | ${x.batch64_ms.toFixed(0)} |`);
}
fs.mkdirSync(path.join(here, 'out'), { recursive: true });
fs.writeFileSync(path.join(here, 'out/load.json'), JSON.stringify({ mbps, encoding, runs, results }, null, 1));
