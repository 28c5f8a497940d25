// The training lab's worker: a short distillation in its own wasm instance, one message per
// epoch, stopped between epochs on request.
// Rust panics print their stack (saad-web's panic hook); keep enough frames to be useful.
Error.stackTraceLimit = 64;
import init, { TrainingLab } from './pkg/saad_web.js';

let stop = false;

self.onmessage = async (ev) => {
  const m = ev.data;
  if (m.cmd === 'stop') {
    stop = true;
    return;
  }
  if (m.cmd !== 'start') return;
  stop = false;
  try {
    await init();
    const lab = await TrainingLab.create(m.backend, m.teacher, m.method, m.arch, m.epochs, m.steps, 0);
    self.postMessage({ type: 'started', backend: lab.backend() });
    // 1438 training digits in batches of 64.
    const batches = Math.ceil(1438 / 64);
    while (!lab.is_done() && !stop) {
      const t0 = performance.now();
      const stats = JSON.parse(await lab.epoch());
      stats.seconds = (performance.now() - t0) / 1000;
      stats.batches = batches;
      self.postMessage({ type: 'epoch', stats });
    }
    const bytes = await lab.save_student();
    self.postMessage({ type: 'done', stopped: stop, bytes }, [bytes.buffer]);
  } catch (e) {
    self.postMessage({ type: 'error', message: String((e && e.message) || e) });
  }
};
