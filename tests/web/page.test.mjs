// The page in a real browser: headless Debian Chromium driven by playwright-core, the page
// served from web/www on a localhost port, on a HiDPI screen (device pixel ratio 2). On each
// available backend (the CPU, and WebGPU when Chromium gives an adapter) it attacks one image
// and checks the numbers the page shows, checks the batch view's scatter, weights and summary
// against the engine's records, trains students in workers (on the CPU, from both shipped
// teachers side by side), and rejects a bad uploaded file; screenshots go to tests/output/ (the
// CI artifact), timings to tests/output/page-timings.json.
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
    deviceScaleFactor: 2,
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

      // The images are buttons: reachable and chosen with the keyboard.
      await page.focus('#grid button[data-index="5"]');
      await page.keyboard.press('Enter');
      assert.equal(await page.getAttribute('#grid button[data-index="5"]', 'aria-selected'), 'true');
      // Charts follow the device pixel ratio (sharp on HiDPI screens).
      const hidpi = await page.evaluate(() => { const c = document.getElementById('train-chart'); return [c.width, c.clientWidth]; });
      assert.deepEqual(hidpi, [840, 420], 'the chart canvas has 2 device pixels per CSS pixel');

      // An attack on image 3 with PGD-10 at eps 8/255.
      await page.click('#grid button[data-index="3"]');
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
      // Zoom scales the image views (nearest neighbour); the perturbation view has a colour scale.
      await page.selectOption('#zoom', '16');
      assert.equal(await page.evaluate(() => document.getElementById('cv-adv').style.width), '256px');
      assert.equal(await page.evaluate(() => getComputedStyle(document.getElementById('cv-delta')).imageRendering), 'pixelated');
      const scale = await page.getAttribute('#delta-scale', 'aria-label');
      assert.match(scale, /blue -8\.00\/255, white 0, orange \+8\.00\/255/);
      await page.selectOption('#gain', '4');
      assert.match(await page.getAttribute('#delta-scale', 'aria-label'), /orange \+2\.00\/255/);
      await page.selectOption('#zoom', '10');

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
      // The scatter and the numbers under it, against the engine's records: TAS from the
      // kernel's sums equals the records' count, "transfers" is the teacher margin's sign, each
      // record's weight (the training code's tensors) is the curve the page draws
      // (saad_weight_in_batch), and the AUC and weight share shown are the records'.
      const batch = await page.evaluate(async () => {
        const m = await import('./pkg/saad_web.js');
        const { records, stats } = window.saadPage.batch;
        const hs = records.map((r) => r.teacher_entropy);
        const [lo, hi] = [Math.min(...hs), Math.max(...hs)];
        return {
          records, stats, curve: window.saadPage.curve,
          formula: records.map((r) => m.saad_weight_in_batch(r.teacher_entropy, lo, hi)),
          curveAgain: window.saadPage.curve.map(([h]) => m.saad_weight_in_batch(h, lo, hi)[0]),
          shown: { ...document.getElementById('entropy-numbers').dataset },
          text: document.getElementById('entropy-numbers').textContent,
          marked: document.querySelectorAll('#batch-grid .thumb.transfers').length,
          scatter: document.getElementById('entropy-scatter').getAttribute('aria-label'),
        };
      });
      assert.equal(batch.records.length, 32);
      const moved = batch.records.filter((x) => x.transfers);
      assert.equal(Math.round(batch.stats.tas * 32), moved.length, 'TAS (sums) vs records');
      assert.equal(batch.marked, moved.length, 'transferring images are marked');
      for (const [i, x] of batch.records.entries()) {
        if (Math.abs(x.teacher_margin) > 1e-5) assert.equal(x.transfers, x.teacher_margin < 0, JSON.stringify(x));
        assert.ok(Math.abs(batch.formula[i][0] - x.saad_weight) < 1e-4, `w ${x.saad_weight} vs ${batch.formula[i][0]}`);
        assert.ok(Math.abs(batch.formula[i][1] - x.saad_weight_hat) < 1e-4, `w^ ${x.saad_weight_hat} vs ${batch.formula[i][1]}`);
      }
      assert.equal(batch.curve.length, 61);
      batch.curve.forEach(([, w], i) => assert.ok(Math.abs(w - batch.curveAgain[i]) < 1e-12));
      assert.match(batch.scatter, new RegExp(`transfers \\(${moved.length}\\) \\(${moved.length} points\\)`));
      if (moved.length && moved.length < 32) {
        const held = batch.records.filter((x) => !x.transfers);
        let wins = 0;
        for (const a of moved) for (const b of held) wins += a.teacher_entropy > b.teacher_entropy ? 1 : a.teacher_entropy === b.teacher_entropy ? 0.5 : 0;
        const auc = wins / (moved.length * held.length);
        assert.ok(Math.abs(Number(batch.shown.auc) - auc) < 1e-12, `AUC shown ${batch.shown.auc} vs ${auc}`);
        assert.ok(batch.text.includes(auc.toFixed(3)), batch.text);
        const share = moved.reduce((a, x) => a + x.saad_weight, 0) / batch.records.reduce((a, x) => a + x.saad_weight, 0);
        assert.ok(batch.text.includes(`${(100 * share).toFixed(1)}% of the batch's total weight`), batch.text);
      }
      timings[`${backend} batch of 32, AUC of entropy for transfer`] = Number(batch.shown.auc);

      // With a batch to weigh it against, the selected image shows its SAAD weight.
      const weight = await page.textContent('#result-weight');
      const hat = Number((weight.match(/ŵ = ([0-9.]+)/) || [])[1]);
      assert.ok(hat >= 0 && hat <= 1, `SAAD weight: "${weight}"`);

      // The training lab lists the core's method registry, SAAD selected.
      const methods = await page.$$eval('#train-method option', (os) => os.map((o) => o.value));
      assert.ok(methods.length >= 9 && methods.includes('pgd-at') && methods.includes('rslad'), `methods: ${methods}`);
      assert.equal(await page.inputValue('#train-method'), 'saad');

      // One epoch of SAAD training in the worker; on the CPU from both shipped teachers at once
      // (robust saturation: two workers, the same student, method and seed).
      const compare = backend === 'cpu';
      await page.selectOption('#train-teacher', compare ? 'compare' : 'loaded');
      await page.fill('#train-epochs', '1');
      await page.fill('#train-steps', '3');
      await page.click('#train-start');
      await page.waitForFunction(() => !document.getElementById('train-save').hidden || !document.getElementById('error').hidden, null, { timeout: 600_000 });
      assert.equal(await page.evaluate(() => document.getElementById('error').hidden), true, `${await page.textContent('#error')}\n${logs.join('\n')}`);
      timings[`${backend} SAAD training step, batch 64, 3 attack steps (ms)${compare ? ', two runs at once' : ''}`] = Number(await page.evaluate(() => document.getElementById('train-status').dataset.stepMs));
      const lab = await page.evaluate(() => ({
        runs: window.saadPage.runs,
        rows: [...document.querySelectorAll('#train-table tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)),
        saves: document.querySelectorAll('#train-saves a:not([hidden])').length,
        chart: document.getElementById('train-chart').getAttribute('aria-label'),
      }));
      assert.equal(lab.runs.length, compare ? 2 : 1);
      assert.equal(lab.rows.length, lab.runs.length);
      assert.equal(lab.saves, lab.runs.length, 'a student to save per run');
      const pct = (v) => `${(100 * v).toFixed(1)}%`;
      lab.runs.forEach((run, i) => {
        assert.equal(run.history.length, 1, JSON.stringify(run));
        const h = run.history[0];
        assert.deepEqual(lab.rows[i].slice(1), [pct(run.teacher.test_clean_acc), pct(run.teacher.test_pgd10_acc), pct(h.test_clean_acc), pct(h.test_pgd10_acc), pct(h.tas), '1']);
      });
      assert.match(lab.chart, compare ? /strong teacher PGD-10 \(1 points\).*weak teacher PGD-10 \(1 points\)/ : /loaded teacher PGD-10 \(1 points\)/);
      if (compare) {
        const [strong, weak] = lab.runs.map((r) => r.teacher.test_pgd10_acc);
        assert.ok(strong > weak, `the strong teacher is the more robust one: PGD-10 ${strong} vs ${weak}`);
        await page.selectOption('#train-teacher', 'loaded');
      }

      await page.screenshot({ path: path.join(out, `page-${backend}.png`), fullPage: true, scale: 'css' });

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
