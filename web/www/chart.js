// The page's charts: a title that says what is plotted, axes with ticks, labels and units, a
// legend, lines, markers and bars, sharp on HiDPI screens (the canvas's backing store follows
// devicePixelRatio). Written for this page (no dependency, no network); about 9 KB unminified.
//
// Colours: Okabe & Ito's colour-blind-safe set (Okabe & Ito, "Color Universal Design", 2008);
// every two-way distinction on the page also differs in marker shape or line style.

/** Okabe–Ito colours by name. */
export const PALETTE = {
  blue: '#0072b2',
  orange: '#e69f00',
  vermillion: '#d55e00',
  green: '#009e73',
  sky: '#56b4e9',
  purple: '#cc79a7',
  black: '#222222',
  grey: '#8a8f98',
};

/**
 * About `count` round tick values (1, 2 or 5 times a power of ten) covering [lo, hi].
 * Returns { ticks, step }.
 */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999);
  const ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return { ticks, step };
}

/** A tick label with as many decimals as the step needs. */
function tickLabel(v, step, format) {
  if (format) return format(v);
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/** Draws a marker of `shape` (circle, triangle or square) centred on (x, y). */
function drawMarker(ctx, shape, x, y, r, color) {
  ctx.beginPath();
  switch (shape) {
    case 'triangle':
      ctx.moveTo(x, y - r * 1.2);
      ctx.lineTo(x + r * 1.1, y + r * 0.8);
      ctx.lineTo(x - r * 1.1, y + r * 0.8);
      ctx.closePath();
      break;
    case 'square':
      ctx.rect(x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8);
      break;
    default:
      ctx.arc(x, y, r, 0, 2 * Math.PI);
  }
  ctx.fillStyle = color;
  ctx.globalAlpha *= 0.85;
  ctx.fill();
  ctx.globalAlpha /= 0.85;
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.stroke();
}

/**
 * A chart on a canvas. `spec`: { title, x: axis, y: axis, y2?: axis, empty? } where an axis is
 * { label, min?, max?, integer?, format? } (the label names the quantity and its unit; min/max
 * fix the range, else it follows the data). The canvas's width/height attributes are its size
 * in CSS pixels.
 *
 * `draw(series)`: each series is { name, points: [[x, y], ...], color, axis: 'y' | 'y2',
 * line?: true, dash?: [..], marker?: shape, size?, bar?: width in x units, rule?: true (a
 * horizontal reference line at points[0][1]) }.
 */
export class Chart {
  constructor(canvas, spec) {
    this.canvas = canvas;
    this.spec = spec;
    this.cssWidth = Number(canvas.getAttribute('width'));
    this.cssHeight = Number(canvas.getAttribute('height'));
    canvas.style.width = `${this.cssWidth}px`;
    canvas.style.height = `${this.cssHeight}px`;
    canvas.setAttribute('role', 'img');
    this.series = [];
    this.draw([]);
  }

  /** The range of an axis: fixed ends where given, else the data's, padded and rounded. */
  range(axis, values) {
    let lo = axis.min ?? Math.min(...values);
    let hi = axis.max ?? Math.max(...values);
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
    if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
    const { ticks, step } = niceTicks(lo, hi, axis.ticks || 5);
    if (axis.min === undefined) lo = Math.min(lo, ticks[0]);
    if (axis.max === undefined) hi = Math.max(hi, ticks[ticks.length - 1]);
    return { lo, hi, ticks: ticks.filter((t) => t >= lo - 1e-9 && t <= hi + 1e-9), step };
  }

  draw(series) {
    this.series = series;
    const { canvas, spec } = this;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(this.cssWidth * dpr);
    canvas.height = Math.round(this.cssHeight * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';

    // The title, then the legend in rows under it.
    ctx.fillStyle = PALETTE.black;
    ctx.font = '600 12px system-ui, sans-serif';
    ctx.textAlign = 'left';
    ctx.fillText(spec.title, 6, 10);
    ctx.font = '11px system-ui, sans-serif';
    const named = series.filter((s) => s.name);
    let lx = 6;
    let ly = 26;
    for (const s of named) {
      const w = 26 + ctx.measureText(s.name).width + 12;
      if (lx + w > this.cssWidth - 4 && lx > 6) {
        lx = 6;
        ly += 15;
      }
      this.legendSample(ctx, s, lx, ly);
      ctx.fillStyle = PALETTE.black;
      ctx.fillText(s.name, lx + 26, ly);
      lx += w;
    }
    const top = (named.length ? ly + 12 : 22);
    const left = 52;
    const right = this.cssWidth - (spec.y2 ? 52 : 14);
    const bottom = this.cssHeight - 34;
    this.box = { left, right, top, bottom };

    const on = (axis) => series.filter((s) => (s.axis || 'y') === axis);
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    const xr = this.range(spec.x, xs);
    const yr = this.range(spec.y, on('y').flatMap((s) => s.points.map((p) => p[1])));
    const y2r = spec.y2 ? this.range(spec.y2, on('y2').flatMap((s) => s.points.map((p) => p[1]))) : null;
    const px = (v) => left + ((v - xr.lo) / (xr.hi - xr.lo)) * (right - left);
    const py = (r) => (v) => bottom - ((v - r.lo) / (r.hi - r.lo)) * (bottom - top);
    this.scales = { x: px, y: py(yr), y2: y2r && py(y2r) };

    // Grid, ticks and tick labels.
    ctx.strokeStyle = '#e3e5ea';
    ctx.lineWidth = 1;
    ctx.fillStyle = '#444';
    ctx.textAlign = 'right';
    for (const t of yr.ticks) {
      const y = Math.round(this.scales.y(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      ctx.fillText(tickLabel(t, yr.step, spec.y.format), left - 5, y);
    }
    if (y2r) {
      ctx.textAlign = 'left';
      for (const t of y2r.ticks) ctx.fillText(tickLabel(t, y2r.step, spec.y2.format), right + 5, this.scales.y2(t));
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const xticks = spec.x.integer ? xr.ticks.filter((t) => Number.isInteger(Math.round(t * 1e6) / 1e6)) : xr.ticks;
    for (const t of xticks) {
      const x = Math.round(px(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, bottom);
      ctx.lineTo(x, bottom + 4);
      ctx.strokeStyle = '#666';
      ctx.stroke();
      ctx.fillText(tickLabel(t, spec.x.integer ? Math.max(1, xr.step) : xr.step, spec.x.format), x, bottom + 6);
    }
    // Axis lines and labels.
    ctx.strokeStyle = '#666';
    ctx.beginPath();
    ctx.moveTo(left + 0.5, top);
    ctx.lineTo(left + 0.5, bottom + 0.5);
    ctx.lineTo(right, bottom + 0.5);
    if (y2r) ctx.lineTo(right + 0.5, top);
    ctx.stroke();
    ctx.fillStyle = PALETTE.black;
    ctx.fillText(spec.x.label, (left + right) / 2, bottom + 20);
    ctx.textBaseline = 'middle';
    this.verticalLabel(ctx, spec.y.label, 10, (top + bottom) / 2, -Math.PI / 2);
    if (y2r) this.verticalLabel(ctx, spec.y2.label, this.cssWidth - 8, (top + bottom) / 2, Math.PI / 2);

    if (!series.some((s) => s.points.length)) {
      ctx.fillStyle = PALETTE.grey;
      ctx.textAlign = 'center';
      ctx.fillText(spec.empty || 'no data yet', (left + right) / 2, (top + bottom) / 2);
    }

    // The data, clipped to the plot area.
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 6, right - left + 6, bottom - top + 6);
    ctx.clip();
    for (const s of series) this.drawSeries(ctx, s, px, this.scales[s.axis || 'y']);
    ctx.restore();
    canvas.setAttribute('aria-label', `${spec.title}: ${named.map((s) => `${s.name} (${s.points.length} points)`).join(', ')}`);
  }

  verticalLabel(ctx, text, x, y, angle) {
    ctx.save();
    ctx.translate(x, y);
    ctx.rotate(angle);
    ctx.textAlign = 'center';
    ctx.fillText(text, 0, 0);
    ctx.restore();
  }

  legendSample(ctx, s, x, y) {
    if (s.bar) {
      ctx.fillStyle = s.color;
      ctx.fillRect(x + 4, y - 5, 16, 10);
      return;
    }
    if (s.line !== false || s.rule) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = s.width || 1.8;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x + 22, y);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (s.marker) drawMarker(ctx, s.marker, x + 11, y, 3.5, s.color);
  }

  drawSeries(ctx, s, px, py) {
    if (!s.points.length) return;
    if (s.bar) {
      ctx.fillStyle = s.color;
      for (const [x, y] of s.points) {
        const x0 = px(x - s.bar / 2) + 1;
        const x1 = px(x + s.bar / 2) - 1;
        const y0 = py(Math.max(0, y));
        ctx.fillRect(x0, y0, Math.max(1, x1 - x0), py(0) - y0);
      }
      return;
    }
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 1.8;
    ctx.setLineDash(s.dash || []);
    if (s.rule) {
      const y = Math.round(py(s.points[0][1])) + 0.5;
      ctx.beginPath();
      ctx.moveTo(this.box.left, y);
      ctx.lineTo(this.box.right, y);
      ctx.stroke();
      ctx.setLineDash([]);
      return;
    }
    if (s.line !== false) {
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    if (s.marker) for (const [x, y] of s.points) drawMarker(ctx, s.marker, px(x), py(y), s.size || 3.5, s.color);
  }
}
