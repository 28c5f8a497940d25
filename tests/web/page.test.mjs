// The page in a real browser: headless Debian Chromium driven by playwright-core, the page
// served from web/www on a localhost port. On each available backend (the CPU, and WebGPU when
// Chromium gives an adapter) it attacks one image and checks the numbers the page shows, trains
// the student for one epoch in the worker, and rejects a bad uploaded file; screenshots go to
// tests/output/ (the CI artifact), timings to tests/output/page-timings.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, '../../web/www');
const out = path.resolve(here, '../output');
const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };

function serve() {
  const server = http.createServer((req, res) => {
    let p = path.join(root, decodeURIComponent(new URL(req.url, 'http://localhost').pathname));
    if (p.endsWith('/')) p += 'index.html';
    if (!p.startsWith(root) || !fs.existsSync(p) || fs.statSync(p).isDirectory()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(p)] || 'application/octet-stream' });
    fs.createReadStream(p).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('the page attacks, trains and rejects bad files on every available backend', { timeout: 900_000 }, async (t) => {
  assert.ok(fs.existsSync(path.join(root, 'pkg/saad_web_bg.wasm')), 'build the page first: scripts/build-web.sh --dev');
  fs.mkdirSync(out, { recursive: true });
  const server = await serve();
  const port = server.address().port;
  // A fresh profile directory each run (launchPersistentContext is playwright's way to pass one).
  const browser = await chromium.launchPersistentContext(fs.mkdtempSync('/tmp/saad-chromium-'), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: ['--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu'],
  });
  const timings = {};
  try {
    for (const backend of ['cpu', 'webgpu']) {
      const page = await browser.newPage();
      const logs = [];
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      await page.goto(`http://127.0.0.1:${port}/?backend=${backend}`);
      await page.waitForFunction(() => document.body.dataset.ready === '1' || !document.getElementById('error').hidden, null, { timeout: 300_000 });
      const actual = await page.evaluate(() => document.body.dataset.backend);
      if (backend === 'webgpu' && actual !== 'webgpu') {
        t.diagnostic(`WebGPU gave no adapter in this Chromium (${await page.textContent('#error')}); WebGPU checks skipped`);
        await page.close();
        continue;
      }
      assert.equal(actual, backend, `the page runs on ${backend}: ${logs.join('\n')}`);
      assert.match(await page.textContent('#backend-status'), backend === 'cpu' ? /CPU/ : /WebGPU/);

      // An attack on image 3 with PGD-10 at eps 8/255.
      await page.click('#grid canvas[data-index="3"]');
      await page.fill('#eps', '8');
      await page.fill('#steps', '10');
      await page.selectOption('#attack', 'pgd');
      await page.click('#attack-run');
      await page.waitForFunction(() => !document.getElementById('result').hidden && document.getElementById('result').dataset.predAdv !== undefined, null, { timeout: 300_000 });
      const r = await page.evaluate(() => ({ ...document.getElementById('result').dataset, text: document.getElementById('result-pred-adv').textContent }));
      assert.equal(r.error, undefined);
      const pred = Number(r.predAdv);
      assert.ok(Number.isInteger(pred) && pred >= 0 && pred < 10, `predicted class ${r.predAdv}`);
      assert.ok(r.text.startsWith(String(pred)), `the page shows class ${pred}: "${r.text}"`);
      assert.ok(Number(r.linf) <= Number(r.eps) + 1e-6, `Linf ${r.linf} > eps ${r.eps}`);
      assert.ok(Number(r.linf) > 0, 'the attack moved the image');
      timings[`${backend} PGD-10 attack, one image, first call (ms)`] = Number(r.ms);

      // eps = 0: nothing may change, so the adversarial prediction is the clean one.
      await page.fill('#eps', '0');
      await page.selectOption('#attack', 'fgsm');
      await page.click('#attack-run');
      await page.waitForFunction(() => document.getElementById('result').dataset.attack === 'fgsm', null, { timeout: 300_000 });
      const z = await page.evaluate(() => ({ ...document.getElementById('result').dataset, clean: document.getElementById('result-pred-clean').textContent }));
      assert.equal(Number(z.linf), 0);
      assert.ok(z.clean.startsWith(z.predAdv), `eps 0 keeps the clean prediction (${z.clean} vs ${z.predAdv})`);
      await page.fill('#eps', '8');
      await page.selectOption('#attack', 'pgd');
      await page.click('#attack-run');
      await page.waitForFunction(() => document.getElementById('result').dataset.attack === 'pgd', null, { timeout: 300_000 });
      // The first attack paid for compiling the kernels; this one is the steady state.
      timings[`${backend} PGD-10 attack, one image, warm (ms)`] = Number(await page.evaluate(() => document.getElementById('result').dataset.ms));

      // The batch view.
      await page.fill('#batch-n', '32');
      await page.click('#batch-run');
      await page.waitForFunction(() => document.getElementById('batch-summary').dataset.tas !== undefined, null, { timeout: 300_000 });
      const tas = Number(await page.evaluate(() => document.getElementById('batch-summary').dataset.tas));
      assert.ok(tas >= 0 && tas <= 1, `TAS ${tas}`);
      assert.equal(await page.locator('#batch-grid canvas').count(), 32);
      // With a batch to weigh it against, the selected image shows its SAAD weight.
      const weight = await page.textContent('#result-weight');
      const hat = Number((weight.match(/ŵ = ([0-9.]+)/) || [])[1]);
      assert.ok(hat >= 0 && hat <= 1, `SAAD weight: "${weight}"`);

      // The training lab lists the core's method registry, SAAD selected.
      const methods = await page.$$eval('#train-method option', (os) => os.map((o) => o.value));
      assert.ok(methods.length >= 9 && methods.includes('pgd-at') && methods.includes('rslad'), `methods: ${methods}`);
      assert.equal(await page.inputValue('#train-method'), 'saad');

      // One epoch of SAAD training in the worker.
      await page.fill('#train-epochs', '1');
      await page.fill('#train-steps', '3');
      await page.click('#train-start');
      await page.waitForFunction(() => !document.getElementById('train-save').hidden || !document.getElementById('error').hidden, null, { timeout: 600_000 });
      assert.equal(await page.evaluate(() => document.getElementById('error').hidden), true, `${await page.textContent('#error')}\n${logs.join('\n')}`);
      timings[`${backend} SAAD training step, batch 64, 3 attack steps (ms)`] = Number(await page.evaluate(() => document.getElementById('train-status').dataset.stepMs));

      await page.screenshot({ path: path.join(out, `page-${backend}.png`), fullPage: true });

      if (backend === 'cpu') {
        // Stop: a long run ends after the batch in progress and still offers the student.
        await page.fill('#train-epochs', '50');
        await page.fill('#train-steps', '1');
        await page.click('#train-start');
        await page.waitForFunction(() => Number(document.getElementById('train-progress').dataset.batch) >= 2, null, { timeout: 300_000 });
        await page.click('#train-stop');
        await page.waitForFunction(() => !document.getElementById('train-save').hidden, null, { timeout: 300_000 });
        const status = await page.textContent('#train-status');
        assert.match(status, /stopped\.$/);
        const progress = await page.textContent('#train-progress');
        assert.match(progress, /^epoch (\d+)\/50, batch \d+\/23: .* stopped here/);
        assert.ok(Number(progress.match(/^epoch (\d+)/)[1]) < 50, progress);
      }

      // A bad file: a clear message naming it, and the loaded teacher stays.
      await page.setInputFiles('#teacher-file', { name: 'broken.saad', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a checkpoint') });
      await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 60_000 });
      const error = await page.textContent('#error');
      assert.match(error, /broken\.saad/);
      assert.match(error, /not a saad checkpoint/);
      assert.match(await page.textContent('#teacher-desc'), /small-cnn/);

      if (backend === 'cpu') {
        // CIFAR-10 binary batches: a truncated one is named and explained; a valid one (two
        // records) does not fit the 16x16 digit models, and the page says so.
        const upload = async (name, buffer) => {
          await page.evaluate(() => { document.getElementById('error').hidden = true; });
          await page.setInputFiles('#cifar-file', { name, mimeType: 'application/octet-stream', buffer });
          await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 60_000 });
          return page.textContent('#error');
        };
        assert.match(await upload('cut.bin', Buffer.alloc(3000)), /cut\.bin.*not a whole number of 3073-byte/);
        const two = Buffer.alloc(2 * 3073, 128);
        two[0] = 3;
        two[3073] = 7;
        assert.match(await upload('test_batch.bin', two), /do not fit the student \(10 classes, 16x16\)/);
        assert.match(await page.textContent('#data-desc'), /built-in digits/);
      }
      await page.close();
    }
  } finally {
    fs.writeFileSync(path.join(out, 'page-timings.json'), JSON.stringify(timings, null, 1));
    await browser.close();
    server.close();
  }
});
