// The page: models and images into the wasm engine (pkg/saad_web.js), attacks, the batch view
// and the training lab (worker.js). Every engine call that reads tensors is async.
import init, { Lab, methods, saad_weight_in_batch } from './pkg/saad_web.js';

const $ = (id) => document.getElementById(id);
const GRID = 60;
let lab = null;
let selected = 0;
let classes = [];
let last = null;
let timer = null;
// The last batch view: SAAD weights are relative to a batch (saad_weight_in_batch).
let lastBatch = null;
const files = { teacher: null, student: null, cifar: null };

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

function drawRgba(canvas, rgba, size) {
  canvas.width = size;
  canvas.height = size;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba), size, size), 0, 0);
}

function thumb(index, cls) {
  const c = document.createElement('canvas');
  drawRgba(c, lab.thumbnail(index), lab.image_size());
  c.title = `#${index}: ${classes[lab.label(index)]}`;
  if (cls) c.className = cls;
  return c;
}

function drawGrid() {
  const g = $('grid');
  g.replaceChildren();
  for (let i = 0; i < GRID; i++) {
    const c = thumb(i, i === selected ? 'selected' : '');
    c.dataset.index = i;
    c.onclick = () => {
      selected = i;
      drawGrid();
    };
    g.appendChild(c);
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

function drawTrace(r, upto) {
  const cv = $('trace');
  const ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, cv.width, cv.height);
  const series = [['loss', r.loss, '#d62728'], ['margin', r.margin, '#2456c8']];
  const all = r.loss.concat(r.margin);
  const lo = Math.min(...all), hi = Math.max(...all, lo + 1e-6);
  const x = (i) => 30 + (cv.width - 40) * i / Math.max(1, r.loss.length - 1);
  const y = (v) => cv.height - 15 - (cv.height - 25) * (v - lo) / (hi - lo);
  ctx.font = '10px sans-serif';
  series.forEach(([name, vals, color], k) => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    vals.slice(0, upto + 1).forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillText(name, cv.width - 60, 12 + 12 * k);
  });
  ctx.fillStyle = '#333';
  ctx.fillText('student CE loss and margin (z_y - max other) per step', 30, cv.height - 2);
}

function drawFrame(k) {
  const r = last;
  const size = lab.image_size();
  drawRgba($('cv-adv'), r.frames[k], size);
  drawRgba($('cv-delta'), r.deltas[k], size);
  $('frame-no').textContent = `${k} / ${r.frames.length - 1}`;
  drawTrace(r, k);
}

function showProbs(r) {
  const p = $('probs');
  p.replaceChildren();
  const head = ['class', 'teacher clean / adv', 'student clean / adv', ''];
  head.forEach((h) => { const d = document.createElement('b'); d.textContent = h; p.appendChild(d); });
  classes.forEach((name, c) => {
    const label = document.createElement('span');
    label.textContent = name + (c === r.label ? ' ✓' : '');
    p.appendChild(label);
    for (const [a, b, t] of [[r.teacher_clean[c], r.teacher_adv[c], 't'], [r.student_clean[c], r.student_adv[c], '']]) {
      const cell = document.createElement('div');
      cell.innerHTML = `<div class="bar ${t}" style="width:${(60 * a).toFixed(1)}px"></div><div class="bar ${t}" style="opacity:.5;width:${(60 * b).toFixed(1)}px"></div>`;
      p.appendChild(cell);
    }
    p.appendChild(document.createElement('span'));
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
  drawRgba($('cv-clean'), r.clean, size);
  drawFrame(r.frames.length - 1);
  $('result-label').textContent = classes[r.label];
  $('result-pred-adv').textContent = classes[r.student_pred_adv] + (r.student_fooled ? ' (fooled)' : ' (holds)');
  $('result-pred-clean').textContent = classes[r.student_pred_clean];
  $('result-teacher-adv').textContent = classes[r.teacher_pred_adv];
  $('result-transfers').textContent = r.transfers ? 'transfers (fools the teacher)' : 'does not transfer';
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

async function runBatch() {
  showError('');
  const c = controls();
  const n = Math.max(2, Number($('batch-n').value) | 0);
  const t0 = performance.now();
  const r = JSON.parse(await lab.batch(0, n, c.attack, c.eps, c.alpha, c.steps, c.seed));
  const ms = performance.now() - t0;
  const s = r.stats;
  $('batch-summary').textContent = `TAS ${(100 * s.tas).toFixed(1)}% of ${s.samples} student-crafted examples fool the teacher; ` +
    `student fooled ${(100 * s.student_asr).toFixed(1)}%; teacher entropy ${s.teacher_entropy_mean.toFixed(3)} ± ${s.teacher_entropy_std.toFixed(3)}; ${ms.toFixed(0)} ms`;
  $('batch-summary').dataset.tas = s.tas;
  const hist = $('hist').getContext('2d');
  const cv = $('hist');
  hist.clearRect(0, 0, cv.width, cv.height);
  const max = Math.max(...s.weight_hist, 1);
  s.weight_hist.forEach((v, i) => {
    const h = (cv.height - 20) * v / max;
    hist.fillStyle = '#2456c8';
    hist.fillRect(10 + i * 30, cv.height - 15 - h, 24, h);
    hist.fillStyle = '#333';
    hist.font = '9px sans-serif';
    hist.fillText(`${(i / 10).toFixed(1)}`, 12 + i * 30, cv.height - 3);
  });
  hist.fillText('histogram of SAAD weights w^', 160, 10);
  const hs = r.records.map((rec) => rec.teacher_entropy);
  lastBatch = { n: hs.length, minH: Math.min(...hs), maxH: Math.max(...hs) };
  if (last) $('result-weight').textContent = weightText(last.teacher_entropy);
  const recs = r.records.slice();
  if ($('batch-sort').checked) recs.sort((a, b) => b.saad_weight_hat - a.saad_weight_hat);
  const g = $('batch-grid');
  g.replaceChildren();
  for (const rec of recs) {
    const t = thumb(rec.index, rec.transfers ? 'transfers' : 'holds');
    t.title += ` | teacher ${classes[rec.teacher_adv]}, student ${classes[rec.student_adv]}, H ${rec.teacher_entropy.toFixed(2)}, w^ ${rec.saad_weight_hat.toFixed(2)}`;
    g.appendChild(t);
  }
}

// The training lab in a worker.
let worker = null;
const history = [];
function drawTrain() {
  const cv = $('train-chart');
  const ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, cv.width, cv.height);
  const n = Math.max(2, Number($('train-epochs').value));
  const x = (e) => 30 + (cv.width - 140) * (e - 1) / Math.max(1, n - 1);
  const y = (v) => cv.height - 15 - (cv.height - 25) * Math.min(1, Math.max(0, v));
  const lines = [['train_acc', '#2ca02c', 'train acc'], ['test_clean_acc', '#1f77b4', 'test clean'], ['test_pgd10_acc', '#d62728', 'test PGD-10'], ['tas', '#9467bd', 'TAS'], ['loss_scaled', '#ff7f0e', 'loss / max']];
  const maxLoss = Math.max(...history.map((h) => h.loss), 1e-9);
  ctx.font = '10px sans-serif';
  lines.forEach(([key, color, name], k) => {
    const pts = history.map((h) => [h.epoch, key === 'loss_scaled' ? h.loss / maxLoss : h[key]]).filter((p) => p[1] != null);
    ctx.strokeStyle = color;
    ctx.beginPath();
    pts.forEach(([e, v], i) => (i ? ctx.lineTo(x(e), y(v)) : ctx.moveTo(x(e), y(v))));
    ctx.stroke();
    ctx.fillStyle = color;
    pts.forEach(([e, v]) => ctx.fillRect(x(e) - 2, y(v) - 2, 4, 4));
    ctx.fillStyle = color;
    ctx.fillText(name, cv.width - 100, 14 + 13 * k);
  });
}

function startTraining() {
  showError('');
  history.length = 0;
  drawTrain();
  worker = new Worker('worker.js', { type: 'module' });
  $('train-start').disabled = true;
  $('train-stop').disabled = false;
  $('train-save').hidden = true;
  delete $('train-status').dataset.epoch;
  $('train-progress').textContent = '';
  delete $('train-progress').dataset.batch;
  $('train-status').textContent = 'starting the worker…';
  worker.onmessage = (ev) => {
    const m = ev.data;
    if (m.type === 'started') $('train-status').textContent = `training on ${m.backend}…`;
    if (m.type === 'batch') {
      const p = m.progress;
      $('train-progress').textContent = `epoch ${p.epoch}/${p.epochs}, batch ${p.batch}/${p.batches}: running loss ${p.loss.toFixed(4)}, train acc ${(100 * p.train_acc).toFixed(1)}%`;
      $('train-progress').dataset.batch = p.batch;
    }
    if (m.type === 'epoch') {
      history.push(m.stats);
      const s = m.stats;
      $('train-status').textContent = `epoch ${s.epoch}/${s.epochs}: loss ${s.loss.toFixed(4)}, train acc ${(100 * s.train_acc).toFixed(1)}%, ` +
        `test clean ${(100 * s.test_clean_acc).toFixed(1)}%, PGD-10 ${(100 * s.test_pgd10_acc).toFixed(1)}%` +
        (s.tas != null ? `, TAS ${(100 * s.tas).toFixed(1)}%` : '') +
        ` (training ${s.train_seconds.toFixed(1)} s = ${(1000 * s.train_seconds / s.batches).toFixed(0)} ms per step of batch 64; evaluation ${s.eval_seconds.toFixed(1)} s)`;
      $('train-status').dataset.epoch = s.epoch;
      $('train-status').dataset.stepMs = (1000 * s.train_seconds / s.batches).toFixed(1);
      drawTrain();
    }
    if (m.type === 'done' || m.type === 'error') {
      $('train-start').disabled = false;
      $('train-stop').disabled = true;
      worker.terminate();
    }
    if (m.type === 'done') {
      const url = URL.createObjectURL(new Blob([m.bytes], { type: 'application/octet-stream' }));
      $('train-save').href = url;
      $('train-save').hidden = false;
      $('train-status').textContent += m.stopped ? ' — stopped.' : ' — done.';
      if (m.stopped) $('train-progress').textContent += ' — stopped here; the student can be saved as it is.';
    }
    if (m.type === 'error') showError('training: ' + m.message);
  };
  worker.postMessage({
    cmd: 'start', backend: document.body.dataset.backend, teacher: files.teacher.bytes,
    method: $('train-method').value, arch: $('train-arch').value,
    epochs: Number($('train-epochs').value) | 0, steps: Number($('train-steps').value) | 0,
  });
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

async function main() {
  await init();
  fillMethods();
  const backend = new URLSearchParams(location.search).get('backend') || (await defaultBackend());
  $('backend-select').value = backend;
  [files.teacher, files.student] = await Promise.all([fetchBytes('models/teacher.saad'), fetchBytes('models/student.saad')]);
  await start(backend);
  $('backend-select').onchange = (e) => start(e.target.value).catch((err) => showError(err.message));
  $('attack-run').onclick = () => runAttack().catch((e) => showError(e.message));
  $('attack-play').onclick = playSteps;
  $('batch-run').onclick = () => runBatch().catch((e) => showError(e.message));
  $('train-start').onclick = startTraining;
  $('train-stop').onclick = () => worker && worker.postMessage({ cmd: 'stop' });
  $('teacher-file').onchange = onFile('teacher');
  $('student-file').onchange = onFile('student');
  $('cifar-file').onchange = onFile('cifar');
}

main().catch((e) => showError(e.message || String(e)));
