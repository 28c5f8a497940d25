// The page: models and images into the wasm engine (pkg/saad_web.js), attacks, the batch view
// and the training lab (worker.js, one worker per run). Every engine call that reads tensors is
// async; every number shown comes from the engine (the core's own code), the page only arranges it.
import init, { Lab, methods, perturbation_rgba, perturbation_scale_rgba, saad_weight_in_batch } from './pkg/saad_web.js';
import { Chart, PALETTE } from './chart.js';

const $ = (id) => document.getElementById(id);
const GRID = 60;
// Transfers / does not: orange triangle vs blue circle everywhere (colour and shape).
const TRANSFERS = { color: PALETTE.orange, marker: 'triangle', mark: '▲', word: 'transfers' };
const HOLDS = { color: PALETTE.blue, marker: 'circle', mark: '●', word: 'does not transfer' };
let lab = null;
let selected = 0;
let classes = [];
let last = null;
let timer = null;
// The last batch view: SAAD weights are relative to a batch (saad_weight_in_batch).
let lastBatch = null;
const files = { teacher: null, student: null, cifar: null };
// The shipped teachers, kept for the comparison whatever the user loads.
const shipped = { strong: null, weak: null };
const charts = {};
// What the charts show, for the browser test (it checks these against the engine).
window.saadPage = {};

function showError(msg) {
  const e = $('error');
  e.textContent = msg || '';
  e.hidden = !msg;
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return { bytes: new Uint8Array(await r.arrayBuffer()), name: url.split('/').pop() };
}

async function defaultBackend() {
  if (navigator.gpu) {
    try {
      if (await navigator.gpu.requestAdapter()) return 'webgpu';
    } catch (_) { /* no adapter */ }
  }
  return 'cpu';
}

function drawRgba(canvas, rgba, width, height = width) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
}

// An image as a keyboard-reachable button.
function thumb(index, kind) {
  const b = document.createElement('button');
  b.className = 'thumb';
  b.dataset.index = index;
  const c = document.createElement('canvas');
  drawRgba(c, lab.thumbnail(index), lab.image_size());
  b.appendChild(c);
  b.title = `#${index}: ${classes[lab.label(index)]}`;
  if (kind) {
    b.classList.add(kind === TRANSFERS ? 'transfers' : 'holds');
    const m = document.createElement('span');
    m.className = 'mark';
    m.textContent = kind.mark;
    m.setAttribute('aria-hidden', 'true');
    b.appendChild(m);
  }
  b.setAttribute('aria-label', b.title);
  return b;
}

function drawGrid() {
  const g = $('grid');
  g.replaceChildren();
  for (let i = 0; i < GRID; i++) {
    const b = thumb(i);
    b.setAttribute('role', 'option');
    b.setAttribute('aria-selected', String(i === selected));
    b.onclick = () => {
      selected = i;
      for (const o of g.children) o.setAttribute('aria-selected', String(Number(o.dataset.index) === i));
    };
    g.appendChild(b);
  }
}

// Loads (or reloads) everything into a lab on `backend`.
async function start(backend) {
  $('backend-status').textContent = 'starting…';
  try {
    lab = await Lab.create(backend);
  } catch (e) {
    if (backend !== 'webgpu') throw e;
    showError(`WebGPU could not start (${e.message}); using the CPU instead.`);
    lab = await Lab.create('cpu');
    $('backend-select').value = 'cpu';
  }
  $('backend-status').textContent = 'Backend: ' + lab.backend();
  document.body.dataset.backend = lab.backend().startsWith('WebGPU') ? 'webgpu' : 'cpu';
  $('teacher-desc').textContent = lab.load_teacher(files.teacher.bytes, files.teacher.name);
  $('student-desc').textContent = lab.load_student(files.student.bytes, files.student.name);
  if (files.cifar) {
    lab.use_cifar10(files.cifar.bytes, files.cifar.name);
    $('data-desc').textContent = files.cifar.name;
  } else {
    const n = lab.use_digits(lab.student_image_size());
    $('data-desc').textContent = `built-in digits, ${n} test images at ${lab.image_size()}x${lab.image_size()}`;
  }
  classes = JSON.parse(lab.class_names());
  selected = Math.min(selected, GRID - 1);
  drawGrid();
  document.body.dataset.ready = '1';
}

function controls() {
  return {
    attack: $('attack').value,
    eps: Number($('eps').value) / 255,
    alpha: Number($('alpha').value) / 255,
    steps: Math.max(1, Number($('steps').value) | 0),
    seed: Math.max(0, Number($('seed').value) | 0),
  };
}

// ---- One image ----

function setZoom() {
  const px = `${lab.image_size() * Number($('zoom').value)}px`;
  for (const id of ['cv-clean', 'cv-adv', 'cv-delta']) Object.assign($(id).style, { width: px, height: px });
}

function drawTrace(r, upto) {
  const steps = (v) => v.slice(0, upto + 1).map((y, i) => [i, y]);
  charts.trace.draw([
    { name: 'student CE loss (left)', points: steps(r.loss), color: PALETTE.vermillion, marker: 'square', size: 2.5 },
    { name: 'student margin (right)', points: steps(r.margin), color: PALETTE.blue, dash: [5, 3], marker: 'circle', size: 2.5, axis: 'y2' },
    { name: '', points: [[0, 0]], color: PALETTE.grey, rule: true, dash: [2, 3], axis: 'y2', width: 1 },
  ]);
}

function drawPerturbation(k) {
  const r = last;
  const range = r.eps / Number($('gain').value);
  drawRgba($('cv-delta'), perturbation_rgba(r.clean_values, r.frame_values[k], lab.image_size(), range), lab.image_size());
  const strip = $('delta-scale');
  const ctx = strip.getContext('2d');
  const w = 140;
  const img = document.createElement('canvas');
  drawRgba(img, perturbation_scale_rgba(w, range), w, 1);
  const dpr = window.devicePixelRatio || 1;
  strip.width = 180 * dpr;
  strip.height = 30 * dpr;
  Object.assign(strip.style, { width: '180px', height: '30px' });
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 20, 2, w, 10);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(20, 2, w, 10);
  ctx.fillStyle = '#333';
  ctx.font = '10px system-ui, sans-serif';
  ctx.textAlign = 'center';
  const e255 = range * 255;
  [[-e255, 20], [0, 20 + w / 2], [e255, 20 + w]].forEach(([v, x]) => ctx.fillText(`${v > 0 ? '+' : ''}${+v.toFixed(2)}`, x, 24));
  strip.setAttribute('aria-label', `colour scale: blue ${(-e255).toFixed(2)}/255, white 0, orange +${e255.toFixed(2)}/255`);
  strip.title = 'δ ×255, averaged over colour channels';
}

function drawFrame(k) {
  const r = last;
  drawRgba($('cv-adv'), r.frames[k], lab.image_size());
  drawPerturbation(k);
  $('frame-no').textContent = `${k} / ${r.frames.length - 1}`;
  $('result').dataset.frame = k;
  drawTrace(r, k);
}

function showProbs(r) {
  const p = $('probs');
  p.replaceChildren();
  const cell = (html) => {
    const d = document.createElement('div');
    d.innerHTML = html;
    p.appendChild(d);
  };
  cell('<b>class</b>');
  cell('<b>teacher</b> clean / <i>adv</i>');
  cell('<b>student</b> clean / <i>adv</i>');
  const bar = (v, cls) => `<div class="bar ${cls}" style="width:${(80 * v).toFixed(1)}px" title="${(100 * v).toFixed(1)}%"></div>`;
  classes.forEach((name, c) => {
    cell(`${name}${c === r.label ? ' ✓' : ''}`);
    cell(bar(r.teacher_clean[c], '') + bar(r.teacher_adv[c], 'adv'));
    cell(bar(r.student_clean[c], 'student') + bar(r.student_adv[c], 'student adv'));
  });
}

async function runAttack() {
  showError('');
  clearInterval(timer);
  const c = controls();
  const t0 = performance.now();
  const r = JSON.parse(await lab.attack(selected, c.attack, c.eps, c.alpha, c.steps, c.seed));
  const ms = performance.now() - t0;
  last = r;
  const size = lab.image_size();
  $('result').hidden = false;
  setZoom();
  drawRgba($('cv-clean'), r.clean, size);
  drawFrame(r.frames.length - 1);
  $('result-label').textContent = classes[r.label];
  $('result-pred-adv').textContent = classes[r.student_pred_adv] + (r.student_fooled ? ' (fooled)' : ' (holds)');
  $('result-pred-clean').textContent = classes[r.student_pred_clean];
  $('result-teacher-adv').textContent = classes[r.teacher_pred_adv];
  $('result-transfers').textContent = r.transfers ? `${TRANSFERS.mark} transfers (fools the teacher)` : `${HOLDS.mark} does not transfer`;
  $('result-entropy').textContent = r.teacher_entropy.toFixed(3);
  $('result-linf').textContent = r.linf.toFixed(5);
  $('result-linf255').textContent = (r.linf * 255).toFixed(2);
  $('result-time').textContent = ms.toFixed(0);
  $('result-weight').textContent = weightText(r.teacher_entropy);
  Object.assign($('result').dataset, {
    label: r.label, predAdv: r.student_pred_adv, teacherPredAdv: r.teacher_pred_adv,
    linf: r.linf, eps: c.eps, ms: ms.toFixed(1), attack: c.attack, steps: c.steps, backend: document.body.dataset.backend,
  });
  showProbs(r);
  $('attack-play').disabled = false;
}

function playSteps() {
  if (!last) return;
  clearInterval(timer);
  let k = 0;
  timer = setInterval(() => {
    drawFrame(k);
    k += 1;
    if (k >= last.frames.length) clearInterval(timer);
  }, 250);
}

// This image's SAAD weight if it were in the last batch attacked (computed by the core).
function weightText(h) {
  if (!lastBatch) return '— (relative to a batch: run the batch view)';
  const [w, hat] = saad_weight_in_batch(h, lastBatch.minH, lastBatch.maxH);
  return `w = ${w.toFixed(3)}, ŵ = ${hat.toFixed(3)} (against the last batch of ${lastBatch.n})`;
}

// ---- The batch view ----

// Probability that a transferring example has the higher teacher entropy than one that does not
// (ties count half): the ROC AUC of entropy as a predictor of transfer.
function entropyAuc(recs) {
  const t = recs.filter((r) => r.transfers).map((r) => r.teacher_entropy);
  const h = recs.filter((r) => !r.transfers).map((r) => r.teacher_entropy);
  if (!t.length || !h.length) return null;
  let wins = 0;
  for (const a of t) for (const b of h) wins += a > b ? 1 : a === b ? 0.5 : 0;
  return wins / (t.length * h.length);
}

const mean = (v) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);

function drawScatter(recs) {
  const hs = recs.map((r) => r.teacher_entropy);
  const [minH, maxH] = [Math.min(...hs), Math.max(...hs)];
  // SAAD's weight over the batch's entropy range, from the core (one point per 1/60 of it).
  const curve = Array.from({ length: 61 }, (_, i) => {
    const h = minH + ((maxH - minH) * i) / 60;
    return [h, saad_weight_in_batch(h, minH, maxH)[0]];
  });
  const pts = (kind) => recs.filter((r) => r.transfers === (kind === TRANSFERS)).map((r) => [r.teacher_entropy, r.teacher_margin]);
  const nT = recs.filter((r) => r.transfers).length;
  charts.scatter.draw([
    { name: `${TRANSFERS.word} (${nT})`, points: pts(TRANSFERS), color: TRANSFERS.color, marker: TRANSFERS.marker, line: false, size: 4 },
    { name: `${HOLDS.word} (${recs.length - nT})`, points: pts(HOLDS), color: HOLDS.color, marker: HOLDS.marker, line: false, size: 3.5 },
    { name: 'SAAD weight w (right axis)', points: curve, color: '#555', width: 2.2, axis: 'y2' },
    { name: '', points: [[minH, 0]], color: PALETTE.grey, rule: true, dash: [2, 3], width: 1 },
  ]);
  window.saadPage.curve = curve;
}

function drawWeightHistogram(recs) {
  const bins = 10;
  const count = (kind) => {
    const c = new Array(bins).fill(0);
    for (const r of recs) if (r.transfers === (kind === TRANSFERS)) c[Math.min(bins - 1, Math.floor(r.saad_weight_hat * bins))] += 1;
    return c;
  };
  const bars = (kind, shift) => count(kind).map((n, i) => [(i + 0.5) / bins + shift, n]);
  charts.hist.draw([
    { name: TRANSFERS.word, points: bars(TRANSFERS, -0.022), color: TRANSFERS.color, bar: 0.044 },
    { name: HOLDS.word, points: bars(HOLDS, 0.022), color: HOLDS.color, bar: 0.044 },
  ]);
}

async function runBatch() {
  showError('');
  const c = controls();
  const n = Math.max(2, Number($('batch-n').value) | 0);
  const t0 = performance.now();
  const r = JSON.parse(await lab.batch(0, n, c.attack, c.eps, c.alpha, c.steps, c.seed));
  const ms = performance.now() - t0;
  const s = r.stats;
  const recs = r.records;
  window.saadPage.batch = r;
  $('batch-summary').textContent = `TAS ${(100 * s.tas).toFixed(1)}%: of ${s.samples} student-crafted examples, that share fools the teacher; ` +
    `student fooled ${(100 * s.student_asr).toFixed(1)}%; teacher entropy ${s.teacher_entropy_mean.toFixed(3)} ± ${s.teacher_entropy_std.toFixed(3)} nats; ${ms.toFixed(0)} ms`;
  Object.assign($('batch-summary').dataset, { tas: s.tas, ms: ms.toFixed(1) });
  drawScatter(recs);
  drawWeightHistogram(recs);

  const moved = recs.filter((x) => x.transfers);
  const held = recs.filter((x) => !x.transfers);
  const auc = entropyAuc(recs);
  const wSum = recs.reduce((a, x) => a + x.saad_weight, 0);
  const wShare = wSum > 0 ? moved.reduce((a, x) => a + x.saad_weight, 0) / wSum : NaN;
  const numbers = $('entropy-numbers');
  numbers.textContent = auc === null
    ? `All ${recs.length} examples ${moved.length ? 'transfer' : 'hold'}: no comparison in this batch (try another eps, attack or more images).`
    : `Mean teacher entropy: ${mean(moved.map((x) => x.teacher_entropy)).toFixed(3)} on the ${moved.length} that transfer, ` +
      `${mean(held.map((x) => x.teacher_entropy)).toFixed(3)} on the ${held.length} that do not. ` +
      `Entropy ranks a transferring example above a non-transferring one with probability ${auc.toFixed(3)} (ROC AUC; 0.5 = chance). ` +
      `SAAD gives the transferring examples ${(100 * wShare).toFixed(1)}% of the batch's total weight (they are ${(100 * moved.length / recs.length).toFixed(1)}% of it): ` +
      `mean w ${mean(moved.map((x) => x.saad_weight)).toFixed(3)} vs ${mean(held.map((x) => x.saad_weight)).toFixed(3)}.`;
  Object.assign(numbers.dataset, { auc: auc ?? '', weightShare: wShare, transfers: moved.length });

  const hs = recs.map((rec) => rec.teacher_entropy);
  lastBatch = { n: hs.length, minH: Math.min(...hs), maxH: Math.max(...hs) };
  if (last) $('result-weight').textContent = weightText(last.teacher_entropy);
  const order = recs.slice();
  if ($('batch-sort').checked) order.sort((a, b) => b.saad_weight_hat - a.saad_weight_hat);
  const g = $('batch-grid');
  g.replaceChildren();
  for (const rec of order) {
    const kind = rec.transfers ? TRANSFERS : HOLDS;
    const t = thumb(rec.index, kind);
    t.title += ` | ${kind.word} | teacher ${classes[rec.teacher_adv]}, student ${classes[rec.student_adv]}, ` +
      `H ${rec.teacher_entropy.toFixed(2)}, margin ${rec.teacher_margin.toFixed(2)}, ŵ ${rec.saad_weight_hat.toFixed(2)}`;
    t.setAttribute('aria-label', t.title);
    t.onclick = () => {
      selected = rec.index;
      drawGrid();
      runAttack().catch((e) => showError(e.message));
    };
    g.appendChild(t);
  }
}

// ---- The training lab: one worker per run ----

let runs = [];
const RUN_STYLE = [
  { color: PALETTE.blue, marker: 'circle' },
  { color: PALETTE.orange, marker: 'triangle' },
];
const pct = (v) => (v == null ? '—' : `${(100 * v).toFixed(1)}%`);

function drawTrain() {
  const series = (key, scale, extra) => runs.map((run, i) => ({
    name: `${run.label}${extra ? ` ${extra}` : ''}`,
    points: run.history.filter((h) => h[key] != null).map((h) => [h.epoch, scale * h[key]]),
    ...RUN_STYLE[i],
  }));
  const dashed = (list) => list.map((s) => ({ ...s, dash: [5, 3], size: 2.5 }));
  charts.acc.draw([...series('test_pgd10_acc', 100, 'PGD-10'), ...dashed(series('test_clean_acc', 100, 'clean'))]);
  charts.tas.draw(series('tas', 100));
  charts.loss.draw(series('loss', 1));
  const body = $('train-table').tBodies[0];
  body.replaceChildren();
  for (const run of runs) {
    const h = run.history[run.history.length - 1] || {};
    const row = body.insertRow();
    row.dataset.teacher = run.key;
    for (const v of [run.label, pct(run.teacher?.test_clean_acc), pct(run.teacher?.test_pgd10_acc), pct(h.test_clean_acc), pct(h.test_pgd10_acc), pct(h.tas), `${h.epoch ?? 0}`]) {
      row.insertCell().textContent = v;
    }
  }
  $('train-table').hidden = runs.length === 0;
  window.saadPage.runs = runs.map((r) => ({ key: r.key, teacher: r.teacher, history: r.history }));
}

function epochText(s) {
  return `epoch ${s.epoch}/${s.epochs}: loss ${s.loss.toFixed(4)}, train acc ${(100 * s.train_acc).toFixed(1)}%, ` +
    `test clean ${(100 * s.test_clean_acc).toFixed(1)}%, PGD-10 ${(100 * s.test_pgd10_acc).toFixed(1)}%` +
    (s.tas != null ? `, TAS ${(100 * s.tas).toFixed(1)}%` : '') +
    ` (training ${s.train_seconds.toFixed(1)} s = ${(1000 * s.train_seconds / s.batches).toFixed(0)} ms per step of batch 64; evaluation ${s.eval_seconds.toFixed(1)} s)`;
}

// The status lines: one run as before, two prefixed by their teacher.
function showRuns() {
  const line = (run, key) => (runs.length > 1 ? `${run.label}: ${run[key]}` : run[key]);
  $('train-status').textContent = runs.filter((r) => r.status).map((r) => line(r, 'status')).join(' · ');
  $('train-progress').textContent = runs.filter((r) => r.progress).map((r) => line(r, 'progress')).join(' · ');
}

function finish() {
  if (runs.some((r) => !r.finished)) return;
  $('train-start').disabled = false;
  $('train-stop').disabled = true;
  const stopped = runs.some((r) => r.stopped);
  const saves = $('train-saves');
  saves.replaceChildren();
  runs.forEach((run, i) => {
    if (!run.bytes) return;
    const a = document.createElement('a');
    if (i === 0) a.id = 'train-save';
    a.download = runs.length > 1 ? `student-${run.key}.saad` : 'student.saad';
    a.href = URL.createObjectURL(new Blob([run.bytes], { type: 'application/octet-stream' }));
    a.textContent = runs.length > 1 ? `Save student (${run.label})` : 'Save student';
    saves.appendChild(a);
    saves.append(' ');
  });
  if (runs.every((r) => r.bytes)) {
    $('train-status').textContent += stopped ? ' — stopped.' : ' — done.';
    if (stopped) $('train-progress').textContent += ' — stopped here; the student can be saved as it is.';
  }
}

function startTraining() {
  showError('');
  for (const run of runs) run.worker.terminate();
  const compare = $('train-teacher').value === 'compare';
  const teachers = compare
    ? [{ key: 'strong', label: 'strong teacher', bytes: shipped.strong.bytes }, { key: 'weak', label: 'weak teacher', bytes: shipped.weak.bytes }]
    : [{ key: 'loaded', label: 'loaded teacher', bytes: files.teacher.bytes }];
  runs = teachers.map((t) => ({ ...t, history: [], status: 'starting the worker…', progress: '', worker: new Worker('worker.js', { type: 'module' }) }));
  $('train-start').disabled = true;
  $('train-stop').disabled = false;
  $('train-saves').replaceChildren(Object.assign(document.createElement('a'), { id: 'train-save', hidden: true }));
  delete $('train-status').dataset.epoch;
  delete $('train-progress').dataset.batch;
  // The epoch axes span the whole run from the start.
  for (const c of [charts.acc, charts.tas, charts.loss]) c.spec.x.max = Math.max(2, Number($('train-epochs').value) | 0);
  drawTrain();
  showRuns();
  const config = {
    cmd: 'start', backend: document.body.dataset.backend, method: $('train-method').value, arch: $('train-arch').value,
    epochs: Number($('train-epochs').value) | 0, steps: Number($('train-steps').value) | 0,
  };
  for (const run of runs) {
    run.worker.onmessage = (ev) => {
      const m = ev.data;
      if (m.type === 'started') run.status = `training on ${m.backend}…`;
      if (m.type === 'teacher') run.teacher = m.acc;
      if (m.type === 'batch') {
        const p = m.progress;
        run.progress = `epoch ${p.epoch}/${p.epochs}, batch ${p.batch}/${p.batches}: running loss ${p.loss.toFixed(4)}, train acc ${(100 * p.train_acc).toFixed(1)}%`;
        run.batch = p.batch;
        $('train-progress').dataset.batch = Math.min(...runs.map((r) => r.batch || 0));
      }
      if (m.type === 'epoch') {
        run.history.push(m.stats);
        run.status = epochText(m.stats);
        $('train-status').dataset.epoch = Math.min(...runs.map((r) => r.history.length));
        $('train-status').dataset.stepMs = (1000 * runs[0].history.at(-1)?.train_seconds / runs[0].history.at(-1)?.batches).toFixed(1);
      }
      if (m.type === 'done') {
        run.bytes = m.bytes;
        run.stopped = m.stopped;
      }
      if (m.type === 'error') showError(`training (${run.label}): ${m.message}`);
      if (m.type === 'done' || m.type === 'error') {
        run.finished = true;
        run.worker.terminate();
      }
      drawTrain();
      showRuns();
      finish();
    };
    run.worker.postMessage({ ...config, teacher: run.bytes });
  }
}

async function readFile(input) {
  const f = input.files[0];
  return f ? { bytes: new Uint8Array(await f.arrayBuffer()), name: f.name } : null;
}

// A file the user picked: checked by the engine before it replaces what is loaded.
function onFile(kind) {
  return async (ev) => {
    showError('');
    const f = await readFile(ev.target);
    ev.target.value = '';
    if (!f) return;
    try {
      if (kind === 'teacher') $('teacher-desc').textContent = lab.load_teacher(f.bytes, f.name);
      if (kind === 'student') {
        $('student-desc').textContent = lab.load_student(f.bytes, f.name);
        // The digits are rendered at the student's size; CIFAR images must already fit.
        if (!files.cifar) {
          const n = lab.use_digits(lab.student_image_size());
          $('data-desc').textContent = `built-in digits, ${n} test images at ${lab.image_size()}x${lab.image_size()}`;
          drawGrid();
        }
      }
      if (kind === 'cifar') {
        lab.use_cifar10(f.bytes, f.name);
        classes = JSON.parse(lab.class_names());
        $('data-desc').textContent = f.name;
        selected = 0;
        drawGrid();
      }
      files[kind] = f;
    } catch (e) {
      showError(e.message);
    }
  };
}

// The training lab's methods: the core's registry (SAAD selected).
function fillMethods() {
  const select = $('train-method');
  select.replaceChildren();
  for (const m of JSON.parse(methods())) {
    const option = new Option(m.needs_teacher ? m.title : `${m.title} (no teacher)`, m.name, false, m.name === 'saad');
    option.title = m.summary;
    select.append(option);
  }
}

function makeCharts() {
  const percent = { min: 0, max: 100 };
  charts.trace = new Chart($('trace'), {
    title: 'The student on each iterate of the attack',
    x: { label: 'attack step', integer: true }, y: { label: 'CE loss (nats)' }, y2: { label: 'margin (logits)' },
  });
  charts.scatter = new Chart($('entropy-scatter'), {
    title: 'Teacher entropy on x′ vs the teacher\'s margin on it, with SAAD\'s weight',
    x: { label: 'teacher entropy H on x′ (nats)' }, y: { label: 'teacher margin on x′ (logits)' }, y2: { label: 'SAAD weight w', min: 0 },
    empty: 'run “Attack the batch”',
  });
  charts.hist = new Chart($('hist'), {
    title: 'SAAD weights in the batch',
    x: { label: 'normalised weight ŵ (bins of 0.1)', min: 0, max: 1 }, y: { label: 'examples', min: 0 },
    empty: 'run “Attack the batch”',
  });
  charts.acc = new Chart($('train-chart'), {
    title: 'Student accuracy on 200 test digits, per epoch',
    x: { label: 'epoch', integer: true, min: 1 }, y: { label: 'accuracy (%)', ...percent }, empty: 'press Start',
  });
  charts.tas = new Chart($('train-tas-chart'), {
    title: 'Transfer rate (TAS) per epoch',
    x: { label: 'epoch', integer: true, min: 1 }, y: { label: 'TAS (%)', min: 0 }, empty: 'methods with a teacher',
  });
  charts.loss = new Chart($('train-loss-chart'), {
    title: 'Training loss per epoch (the method\'s objective)',
    x: { label: 'epoch', integer: true, min: 1 }, y: { label: 'loss', min: 0 }, empty: 'press Start',
  });
}

async function main() {
  await init();
  fillMethods();
  makeCharts();
  const backend = new URLSearchParams(location.search).get('backend') || (await defaultBackend());
  $('backend-select').value = backend;
  [files.teacher, files.student, shipped.weak] = await Promise.all(
    ['models/teacher.saad', 'models/student.saad', 'models/teacher-weak.saad'].map(fetchBytes));
  shipped.strong = files.teacher;
  await start(backend);
  $('backend-select').onchange = (e) => start(e.target.value).catch((err) => showError(err.message));
  $('attack-run').onclick = () => runAttack().catch((e) => showError(e.message));
  $('attack-play').onclick = playSteps;
  $('zoom').onchange = () => last && setZoom();
  $('gain').onchange = () => last && drawPerturbation(Number($('result').dataset.frame));
  $('batch-run').onclick = () => runBatch().catch((e) => showError(e.message));
  $('train-start').onclick = startTraining;
  $('train-stop').onclick = () => runs.forEach((r) => r.worker.postMessage({ cmd: 'stop' }));
  $('teacher-file').onchange = onFile('teacher');
  $('student-file').onchange = onFile('student');
  $('cifar-file').onchange = onFile('cifar');
}

main().catch((e) => showError(e.message || String(e)));
