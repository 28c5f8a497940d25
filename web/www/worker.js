// The training lab's worker: a short distillation in its own wasm instance, the teacher's
// accuracy once, a progress message per batch and statistics per epoch; a Stop takes effect
// after the batch in progress. The page runs one worker per teacher it compares.
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
    // How strong this teacher is, on the same test images and attack as the student.
    self.postMessage({ type: 'teacher', acc: JSON.parse(await lab.evaluate_teacher()) });
    const pause = () => new Promise((resolve) => setTimeout(resolve, 0));
    while (!lab.is_done() && !stop) {
      const t0 = performance.now();
      // One batch per call, with a pause after each so that a 'stop' message gets in.
      while (!lab.epoch_complete() && !stop) {
        const p = JSON.parse(await lab.train_batch());
        self.postMessage({ type: 'batch', progress: p });
        await pause();
      }
      if (stop) break;
      const stats = JSON.parse(await lab.end_epoch());
      const t1 = performance.now();
      Object.assign(stats, JSON.parse(await lab.evaluate()));
      stats.train_seconds = (t1 - t0) / 1000;
      stats.eval_seconds = (performance.now() - t1) / 1000;
      self.postMessage({ type: 'epoch', stats });
    }
    const bytes = await lab.save_student();
    self.postMessage({ type: 'done', stopped: stop, bytes }, [bytes.buffer]);
  } catch (e) {
    self.postMessage({ type: 'error', message: String((e && e.message) || e) });
  }
};
