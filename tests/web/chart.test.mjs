// The page's chart module without a browser: tick values are round (1, 2 or 5 times a power of
// ten), cover the range, and print without float noise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { niceTicks } from '../../web/www/chart.js';

test('ticks are round numbers covering the range', () => {
  assert.deepEqual(niceTicks(0, 100, 5), { ticks: [0, 20, 40, 60, 80, 100], step: 20 });
  assert.deepEqual(niceTicks(0, 1, 5).ticks.map((t) => +t.toFixed(10)), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(-2.3, 4.1, 5), { ticks: [-2, 0, 2, 4], step: 2 });
  for (const [lo, hi] of [[0.0312, 0.0389], [1, 10], [-7e-4, 3e-4], [0, 2.3025], [12, 12]]) {
    const { ticks, step } = niceTicks(lo, hi, 5);
    const mantissa = step / 10 ** Math.floor(Math.log10(step));
    assert.ok([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9), `step ${step} for [${lo}, ${hi}]`);
    assert.ok(ticks.length >= 2 && ticks.length <= 12, `${ticks.length} ticks for [${lo}, ${hi}]`);
    ticks.forEach((t) => assert.ok(Math.abs(t / step - Math.round(t / step)) < 1e-6, `${t} is a multiple of ${step}`));
    if (hi > lo) assert.ok(ticks[0] >= lo - 1e-12 && ticks.at(-1) <= hi + 1e-12, `ticks inside [${lo}, ${hi}]: ${ticks}`);
  }
  assert.ok(niceTicks(0, 1).ticks.includes(0), 'zero is exactly 0');
});
