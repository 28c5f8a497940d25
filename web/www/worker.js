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
    while (!lab.is_done() && !stop) {
      const t0 = performance.now();
      const stats = JSON.parse(await lab.train_epoch());
      const t1 = performance.now();
      Object.assign(stats, JSON.parse(await lab.evaluate()));
      stats.train_seconds = (t1 - t0) / 1000;
      stats.eval_seconds = (performance.now() - t1) / 1000;
      self.postMessage({ type: 'epoch', stats });
      // Let a pending 'stop' message in before the next epoch.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const bytes = await lab.save_student();
    self.postMessage({ type: 'done', stopped: stop, bytes }, [bytes.buffer]);
  } catch (e) {
    self.postMessage({ type: 'error', message: String((e && e.message) || e) });
  }
};
