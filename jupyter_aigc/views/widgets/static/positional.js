// Front end of PositionalView (%aigc_positional): the sinusoidal encoding PE(pos, 2i) = sin(pos/10000^(2i/d)),
// PE(pos, 2i+1) = cos(…), recomputed here for any d_model and number of positions, the similarity of
// positions, and for a rotary model its frequencies and (R_m q)·(R_n k) of a real q and k against m − n.
// The sliders redraw in the browser and send nothing to the kernel.

const OFFSETS = 96;
const STARTS = [0, 10, 50];

function fmt(x) {
  if (!Number.isFinite(x)) return "–";
  return String(Number(x.toPrecision(3))).replace("-", "−");
}

function dark() {
  return document.body.dataset.jpThemeLight === "false";
}

// blue (−1) – white (0) – red (+1)
function diverging(t) {
  const u = Math.max(-1, Math.min(1, t));
  const end = u < 0 ? [33, 102, 172] : [178, 24, 43];
  const a = Math.abs(u);
  return [255 + (end[0] - 255) * a, 255 + (end[1] - 255) * a, 255 + (end[2] - 255) * a];
}

// PE as a Float64Array [positions × d]
function sinusoidal(positions, d) {
  const pe = new Float64Array(positions * d);
  for (let i = 0; i < d / 2; i++) {
    const freq = 1 / Math.pow(10000, (2 * i) / d);
    for (let pos = 0; pos < positions; pos++) {
      const angle = pos * freq;
      pe[pos * d + 2 * i] = Math.sin(angle);
      pe[pos * d + 2 * i + 1] = Math.cos(angle);
    }
  }
  return pe;
}

// transformers' rotate_half: pairs (i, i + d/2), angle = position × inv_freq[i]
function rotate(vector, invFreq, position) {
  const half = vector.length / 2;
  const out = new Float64Array(vector.length);
  for (let i = 0; i < half; i++) {
    const angle = position * invFreq[i];
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out[i] = vector[i] * c - vector[i + half] * s;
    out[i + half] = vector[i + half] * c + vector[i] * s;
  }
  return out;
}

function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function colors(root) {
  const style = getComputedStyle(root);
  const pick = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: pick("--jp-ui-font-color1", dark() ? "#ddd" : "#222"),
    muted: pick("--jp-ui-font-color2", dark() ? "#aaa" : "#666"),
    grid: pick("--jp-border-color2", dark() ? "#444" : "#ddd"),
    font: `11px ${pick("--jp-ui-font-family", "system-ui, sans-serif")}`,
  };
}

// a canvas of css size w×h drawn at the device's pixel ratio
function makeCanvas(cls, w, h) {
  const canvas = el("canvas", cls);
  const ratio = Math.min(2, window.devicePixelRatio || 1);
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  canvas.style.width = w + "px";
  canvas.style.height = h + "px";
  const ctx = canvas.getContext("2d");
  if (ctx) ctx.scale(ratio, ratio);
  return { canvas, ctx, w, h };
}

function ticks(max, count = 5) {
  if (max <= 0) return [0];
  const raw = max / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

// an image of rows×cols values (row-major, already in −1..1) put into the plot area with labelled axes
function heatmap(target, values, rows, cols, xLabel, yLabel, xMax, yMax, pal) {
  const { ctx, w, h } = target;
  if (!ctx) return;
  const m = { left: 44, right: 8, top: 8, bottom: 34 };
  const pw = w - m.left - m.right;
  const ph = h - m.top - m.bottom;
  ctx.clearRect(0, 0, w, h);
  const image = new ImageData(cols, rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const [red, green, blue] = diverging(values[r * cols + c]);
      const o = (r * cols + c) * 4;
      image.data[o] = red;
      image.data[o + 1] = green;
      image.data[o + 2] = blue;
      image.data[o + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = cols;
  off.height = rows;
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, m.left, m.top, pw, ph);
  ctx.strokeStyle = pal.grid;
  ctx.strokeRect(m.left - 0.5, m.top - 0.5, pw + 1, ph + 1);
  ctx.fillStyle = pal.text;
  ctx.font = pal.font;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const v of ticks(xMax)) {
    const x = m.left + ((v + 0.5) / (xMax + 1)) * pw;
    ctx.fillText(String(v), x, m.top + ph + 3);
  }
  ctx.fillText(xLabel, m.left + pw / 2, m.top + ph + 18);
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of ticks(yMax)) {
    const y = m.top + ((v + 0.5) / (yMax + 1)) * ph;
    ctx.fillText(String(v), m.left - 4, y);
  }
  ctx.save();
  ctx.translate(10, m.top + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
}

function render({ model, el: root }) {
  root.classList.add("aigc-pe");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const state = { d: model.get("d_model") || 64, positions: model.get("positions") || 128 };

  const head = el("div", "aigc-pe-head");
  head.append(el("strong", "", "Sinusoidal positional encoding"),
    el("span", "aigc-pe-formula", "PE(pos, 2i) = sin(pos / 10000^(2i/d_model)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model))"));
  const controls = el("div", "aigc-pe-controls");
  const slider = (label, min, max, step, value, key) => {
    const box = el("label", "aigc-pe-slider");
    const input = el("input");
    Object.assign(input, { type: "range", min, max, step });
    input.value = String(value);
    input.dataset.control = key;
    const shown = el("span", "aigc-pe-value", String(value));
    box.append(el("span", "", label), input, shown);
    controls.append(box);
    return { input, shown };
  };
  // the ranges the kernel checks (spec.json), so a slider cannot ask for more than the kernel allows
  const limits = model.get("limits") || {};
  const range = (key, min, max) => [(limits[key] || {}).min ?? min, (limits[key] || {}).max ?? max];
  const [dMin, dMax] = range("d_model", 2, 1024);
  const [pMin, pMax] = range("positions", 1, 2048);
  const dSlider = slider("d_model", dMin, dMax, 2, state.d, "d_model");
  const pSlider = slider("positions", pMin, pMax, 1, state.positions, "positions");

  const charts = el("div", "aigc-pe-charts");
  const peFigure = el("figure", "aigc-pe-figure");
  const peCaption = el("figcaption", "", "The encoding: one row per position, one column per dimension (blue −1, white 0, red +1).");
  const simFigure = el("figure", "aigc-pe-figure");
  const simCaption = el("figcaption", "",
    "Similarity PE(m)·PE(n) of every pair of positions, divided by d_model/2 (1 on the diagonal): nearby " +
    "positions are alike (the dark red band along the diagonal), far ones less so, wherever they are.");
  const pe = makeCanvas("aigc-pe-heatmap", 420, 300);
  const sim = makeCanvas("aigc-pe-similarity", 320, 300);
  peFigure.append(pe.canvas, peCaption);
  simFigure.append(sim.canvas, simCaption);
  charts.append(peFigure, simFigure);

  const rotary = el("div", "aigc-pe-rotary");
  root.append(head, controls, charts, rotary);
  const unframe = frameView(model, root, "positional-encoding");

  let frame = 0;
  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      drawSinusoidal();
    });
  }

  function drawSinusoidal() {
    const pal = colors(root);
    const { d, positions } = state;
    const matrix = sinusoidal(positions, d);
    heatmap(pe, matrix, positions, d, "dimension", "position", d - 1, positions - 1, pal);
    // PE(m)·PE(n) = Σ_i cos((m − n)·freq_i): one value per offset, O(positions·d) instead of O(positions²·d)
    const byOffset = new Float64Array(positions);
    for (let off = 0; off < positions; off++) {
      let s = 0;
      for (let i = 0; i < d / 2; i++) s += Math.cos(off / Math.pow(10000, (2 * i) / d));
      byOffset[off] = s / (d / 2);
    }
    const similarity = new Float64Array(positions * positions);
    for (let a = 0; a < positions; a++) {
      for (let b = 0; b < positions; b++) similarity[a * positions + b] = byOffset[Math.abs(a - b)];
    }
    heatmap(sim, similarity, positions, positions, "position n", "position m", positions - 1, positions - 1, pal);
    root.dataset.dModel = String(d);
    root.dataset.positions = String(positions);
    pe.canvas.dataset.drawn = `${d}x${positions}`;
    sim.canvas.dataset.drawn = `${positions}x${positions}`;
  }

  function readSliders() {
    state.d = Math.min(dMax, Math.max(dMin, 2 * Math.round(parseInt(dSlider.input.value, 10) / 2) || 64));
    state.positions = Math.min(pMax, Math.max(pMin, parseInt(pSlider.input.value, 10) || 128));
    dSlider.shown.textContent = String(state.d);
    pSlider.shown.textContent = String(state.positions);
    schedule();
  }
  for (const s of [dSlider, pSlider]) {
    on(s.input, "input", readSliders);
    on(s.input, "change", readSliders);
  }

  function drawRotary() {
    rotary.replaceChildren();
    const invFreq = model.get("inv_freq") || [];
    if (!invFreq.length) {
      rotary.style.display = "none";
      return;
    }
    rotary.style.display = "";
    const pal = colors(root);
    const qk = floats(model.get("rotary_qk"));
    const d = qk.length / 2;
    const where = model.get("rotary_where") || {};
    const title = el("div", "aigc-pe-head");
    title.append(el("strong", "", `Rotary encoding of ${model.get("model_name") || "the model"}`),
      el("span", "aigc-pe-formula",
        "instead of adding PE to the embeddings, q and k are rotated: each dimension pair (i, i + d/2) turns by " +
        "position × θ_i radians"));
    rotary.append(title);
    const row = el("div", "aigc-pe-charts");

    // frequencies: radians per position of each pair, log scale
    const freq = makeCanvas("aigc-pe-freq", 360, 220);
    {
      const { ctx, w, h } = freq;
      const m = { left: 50, right: 8, top: 10, bottom: 34 };
      const pw = w - m.left - m.right;
      const ph = h - m.top - m.bottom;
      const logs = invFreq.map((f) => Math.log10(Math.max(f, 1e-12)));
      const lo = Math.floor(Math.min(...logs));
      const hi = Math.ceil(Math.max(...logs, lo + 1));
      const y = (v) => m.top + ((hi - v) / (hi - lo)) * ph;
      ctx.font = pal.font;
      ctx.strokeStyle = pal.grid;
      ctx.fillStyle = pal.text;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (let e = lo; e <= hi; e++) {
        ctx.beginPath();
        ctx.moveTo(m.left, y(e) + 0.5);
        ctx.lineTo(m.left + pw, y(e) + 0.5);
        ctx.stroke();
        ctx.fillText(e === 0 ? "1" : `1e${e}`, m.left - 4, y(e));
      }
      const bw = pw / invFreq.length;
      ctx.fillStyle = dark() ? "#e8a33d" : "#2166ac";
      logs.forEach((v, i) => {
        const top = y(v);
        ctx.fillRect(m.left + i * bw + 0.5, top, Math.max(1, bw - 1), m.top + ph - top);
      });
      ctx.fillStyle = pal.text;
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const v of ticks(invFreq.length - 1, 4)) ctx.fillText(String(v), m.left + (v + 0.5) * bw, m.top + ph + 3);
      ctx.fillText("dimension pair i", m.left + pw / 2, m.top + ph + 18);
      ctx.save();
      ctx.translate(11, m.top + ph / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText("θ_i: radians per position (log)", 0, 0);
      ctx.restore();
    }
    const freqFigure = el("figure", "aigc-pe-figure");
    freqFigure.append(freq.canvas, el("figcaption", "",
      `${invFreq.length} pairs: θ_0 = ${fmt(invFreq[0])} radian per position (a full turn every ` +
      `${fmt((2 * Math.PI) / invFreq[0])} positions) down to θ_${invFreq.length - 1} = ` +
      `${fmt(invFreq[invFreq.length - 1])} (a full turn every ${Math.round((2 * Math.PI) / invFreq[invFreq.length - 1]).toLocaleString("en-US")} positions).`));
    row.append(freqFigure);

    // score(m, n) = (R_m q)·(R_n k) against m − n, for several n
    const scoreFigure = el("figure", "aigc-pe-figure");
    const chart = makeCanvas("aigc-pe-offset", 420, 220);
    if (d >= 2 && invFreq.length * 2 === d) {
      const q = qk.subarray(0, d);
      const k = qk.subarray(d, 2 * d);
      const curves = STARTS.map((n) => {
        const kn = rotate(k, invFreq, n);
        const values = [];
        for (let off = 0; off <= OFFSETS; off++) values.push(dot(rotate(q, invFreq, n + off), kn));
        return values;
      });
      let spread = 0;
      for (let off = 0; off <= OFFSETS; off++) {
        for (const c of curves) spread = Math.max(spread, Math.abs(c[off] - curves[0][off]));
      }
      chart.canvas.dataset.maxDifference = String(spread);
      chart.canvas.dataset.scores = JSON.stringify(curves[0].slice(0, 8)); // score(m, 0) for m = 0…7
      const { ctx, w, h } = chart;
      const m = { left: 50, right: 10, top: 10, bottom: 34 };
      const pw = w - m.left - m.right;
      const ph = h - m.top - m.bottom;
      const all = curves.flat();
      let lo = Math.min(...all);
      let hi = Math.max(...all);
      if (hi - lo < 1e-9) {
        lo -= 1;
        hi += 1;
      }
      const pad = (hi - lo) * 0.05;
      lo -= pad;
      hi += pad;
      const x = (off) => m.left + (off / OFFSETS) * pw;
      const y = (v) => m.top + ((hi - v) / (hi - lo)) * ph;
      ctx.font = pal.font;
      ctx.strokeStyle = pal.grid;
      ctx.strokeRect(m.left - 0.5, m.top - 0.5, pw + 1, ph + 1);
      ctx.fillStyle = pal.text;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const v of [lo + pad, (lo + hi) / 2, hi - pad]) ctx.fillText(fmt(v), m.left - 4, y(v));
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const v of ticks(OFFSETS, 6)) ctx.fillText(String(v), x(v), m.top + ph + 3);
      ctx.fillText("offset m − n", m.left + pw / 2, m.top + ph + 18);
      ctx.save();
      ctx.translate(11, m.top + ph / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText("(R_m q)·(R_n k)", 0, 0);
      ctx.restore();
      const styles = dark()
        ? [["#e8a33d", 5, []], ["#7fb8ff", 2.5, [6, 4]], ["#f2f2f2", 1.2, [2, 3]]]
        : [["#f4a582", 5, []], ["#2166ac", 2.5, [6, 4]], ["#111111", 1.2, [2, 3]]];
      curves.forEach((values, c) => {
        const [color, width, dash] = styles[c % styles.length];
        ctx.strokeStyle = color;
        ctx.lineWidth = width;
        ctx.setLineDash(dash);
        ctx.beginPath();
        values.forEach((v, off) => (off ? ctx.lineTo(x(off), y(v)) : ctx.moveTo(x(off), y(v))));
        ctx.stroke();
      });
      ctx.setLineDash([]);
      ctx.lineWidth = 1;
      const legend = el("div", "aigc-pe-legend");
      STARTS.forEach((n, c) => {
        const [color, width, dash] = styles[c % styles.length];
        const item = el("span", "aigc-pe-legend-item");
        const swatch = el("span", "aigc-pe-swatch");
        swatch.style.borderTop = `${Math.max(2, Math.round(width))}px ${dash.length ? (dash[0] > 3 ? "dashed" : "dotted") : "solid"} ${color}`;
        item.append(swatch, el("span", "", `key at n = ${n}`));
        legend.append(item);
      });
      const layer = where.layer ?? 0;
      const headIndex = where.head ?? 0;
      scoreFigure.append(chart.canvas, legend, el("figcaption", "",
        `A real q and k of layer ${layer}, head ${headIndex}, rotated to positions m and n: the three curves ` +
        `lie on top of each other, so the score depends on m − n only (largest gap ${fmt(spread)}).`));
    } else {
      scoreFigure.append(el("figcaption", "", "No q and k to rotate."));
    }
    row.append(scoreFigure);
    rotary.append(row);
  }

  const redrawAll = () => {
    drawSinusoidal();
    drawRotary();
  };
  const handlers = {
    "change:d_model": () => {
      dSlider.input.value = String(model.get("d_model"));
      readSliders();
    },
    "change:positions": () => {
      pSlider.input.value = String(model.get("positions"));
      readSliders();
    },
    "change:inv_freq": drawRotary,
    "change:rotary_qk": drawRotary,
    "change:rotary_where": drawRotary,
    "change:model_name": drawRotary,
  };
  for (const [name, handler] of Object.entries(handlers)) model.on(name, handler);
  // the theme can change while the page is open: redraw the canvases with its colours
  const themeWatch = new MutationObserver(redrawAll);
  themeWatch.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
  readSliders();
  redrawAll();

  return () => {
    for (const [name, handler] of Object.entries(handlers)) model.off(name, handler);
    listeners.abort();
    themeWatch.disconnect();
    if (frame) cancelAnimationFrame(frame);
    unframe();
  };
}

export default { render };
