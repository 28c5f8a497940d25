// Robust saturation in the page: the training lab's "compare" run (one student distilled from the
// strong and from the weak shipped teacher, side by side, same method and seed) for each method,
// on the CPU backend, as a reader would run it. Prints a Markdown table of the last epoch and
// writes the per-epoch histories to bench/web/out/saturation.json and a screenshot per method.
//
//   node bench/web/saturation.mjs [--epochs 10] [--steps 5] [--methods saad,rslad]
import fs from 'node:fs';
import path from 'node:path';
import { launch, openPage, serve } from './common.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : args[i + 1];
};
const epochs = opt('epochs', '10');
const steps = opt('steps', '5');
const methods = opt('methods', 'saad,rslad').split(',');
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });

const server = await serve();
const browser = await launch();
const results = {};
try {
  const page = await openPage(browser, server, 'cpu');
  for (const method of methods) {
    await page.selectOption('#train-method', method);
    await page.selectOption('#train-teacher', 'compare');
    await page.fill('#train-epochs', epochs);
    await page.fill('#train-steps', steps);
    const t0 = Date.now();
    await page.click('#train-start');
    await page.waitForFunction(() => document.querySelector('#train-save:not([hidden])') || !document.getElementById('error').hidden, null, { timeout: 3_600_000 });
    const error = await page.evaluate(() => document.getElementById('error').textContent);
    if (error) throw new Error(`${method}: ${error}`);
    results[method] = { seconds: (Date.now() - t0) / 1000, runs: await page.evaluate(() => window.saadPage.runs) };
    await page.locator('#train-panel').screenshot({ path: path.join(out, `saturation-${method}.png`) });
    console.error(`${method}: ${results[method].seconds.toFixed(0)} s`);
  }
} finally {
  await browser.close();
  server.close();
}
const pct = (v) => (v == null ? '—' : (100 * v).toFixed(1));
console.log(`Training lab, compare, CPU backend: ${epochs} epochs, ${steps} attack steps, small-cnn-4 student, seed 0; accuracy on the same 200 test digits (PGD-10 at 8/255):\n`);
console.log('| method | teacher | teacher clean / PGD-10 (%) | student clean / PGD-10 (%) | TAS, last epoch (%) |');
console.log('| --- | --- | --- | --- | --- |');
for (const [method, r] of Object.entries(results)) {
  for (const run of r.runs) {
    const h = run.history.at(-1);
    console.log(`| ${method} | ${run.key} | ${pct(run.teacher.test_clean_acc)} / ${pct(run.teacher.test_pgd10_acc)} | ${pct(h.test_clean_acc)} / ${pct(h.test_pgd10_acc)} | ${pct(h.tas)} |`);
  }
}
fs.writeFileSync(path.join(out, 'saturation.json'), JSON.stringify({ epochs, steps, results }, null, 1));
