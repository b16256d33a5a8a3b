// Front end of AttentionView: thumbnails arrive as one 8-bit buffer; full maps are fetched per head.
const LINES_MAX_TOKENS = 96;
const LABELS_MAX_TOKENS = 100;

function dark() {
  return document.body.dataset.jpThemeLight === "false";
}

function lut(scale) {
  const table = new Uint8ClampedArray(256 * 4);
  const [lo, hi] = dark() ? [[24, 24, 28], [255, 196, 64]] : [[255, 255, 255], [8, 48, 140]];
  for (let q = 0; q < 256; q++) {
    let t = q / 255;
    if (scale === "sqrt") t = Math.sqrt(t);
    if (scale === "log") t = q === 0 ? 0 : Math.log1p(1000 * t) / Math.log1p(1000);
    for (let c = 0; c < 3; c++) table[q * 4 + c] = lo[c] + (hi[c] - lo[c]) * t;
    table[q * 4 + 3] = 255;
  }
  return table;
}

function bytesOf(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function picture(bytes, side, n, causal, colors) {
  // An offscreen canvas of side×side pixels; cells above the diagonal of a causal map are drawn as masked.
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = side;
  const image = new ImageData(side, side);
  const masked = dark() ? [60, 60, 66] : [226, 226, 230];
  const step = n / side;
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      const i = r * side + c;
      const o = i * 4;
      if (causal && Math.floor(c * step) > Math.floor((r + 1) * step) - 1) {
        image.data[o] = masked[0]; image.data[o + 1] = masked[1]; image.data[o + 2] = masked[2]; image.data[o + 3] = 255;
      } else {
        const q = bytes[i] * 4;
        image.data[o] = colors[q]; image.data[o + 1] = colors[q + 1]; image.data[o + 2] = colors[q + 2]; image.data[o + 3] = 255;
      }
    }
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

function button(text, cls) {
  const b = document.createElement("button");
  b.textContent = text;
  if (cls) b.className = cls;
  return b;
}

function render({ model, el }) {
  const started = performance.now();
  el.classList.add("aigc-attn");
  const bar = document.createElement("div");
  bar.className = "aigc-attn-bar";
  const title = document.createElement("span");
  title.className = "aigc-attn-title";
  const modes = { grid: button("Grid"), head: button("Head"), lines: button("Lines"), answer: button("Answer") };
  const answer = model.get("answer") || [];  // [start, end): the generated tokens of a prompt + answer
  modes.answer.title = "for each generated token, the row of attention it paid (the head or mean opened last)";
  if (answer.length !== 2) modes.answer.style.display = "none";
  const scale = document.createElement("select");
  for (const s of ["linear", "sqrt", "log"]) scale.append(new Option(`scale: ${s}`, s));
  scale.value = "sqrt";
  const exporter = button("Full map PNG", "aigc-attn-export");
  exporter.title = "The whole map at full size, also what does not fit on screen";
  exporter.dataset.noPicture = "";
  const status = document.createElement("span");
  status.className = "aigc-attn-status";
  bar.append(title, ...Object.values(modes), scale, exporter, status);
  const stage = document.createElement("div");
  stage.className = "aigc-attn-stage";
  const tip = document.createElement("div");
  tip.className = "aigc-attn-tip";
  tip.style.display = "none";
  el.append(bar, stage, tip);
  const unframe = frameView(model, el, "attention");

  const state = { mode: "grid", layer: null, head: null, query: null, locked: false, maps: new Map(), nextId: 1 };
  const pending = new Map();
  model.on("msg:custom", (msg, buffers) => {
    if (msg.type !== "head" || !pending.has(msg.id)) return;
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) reject(new Error(msg.error));
    else resolve({ n: msg.n, scale: msg.scale, bytes: bytesOf(buffers[0]) });
  });
  function fetchMap(layer, head) {
    const key = `${layer}:${head}`;
    if (!state.maps.has(key)) {
      const id = state.nextId++;
      state.maps.set(key, new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        model.send({ type: "head", id, layer, head });
      }));
    }
    return state.maps.get(key);
  }
  const tokens = () => model.get("tokens");
  const label = (layer, head) => layer === -1 ? "rollout" : `layer ${layer}, ${head === -1 ? "mean of heads" : "head " + head}`;
  function showTip(event, text) {
    tip.textContent = text;
    tip.style.left = event.clientX + 14 + "px";
    tip.style.top = event.clientY + 14 + "px";
    tip.style.display = "block";
  }
  const hideTip = () => (tip.style.display = "none");

  function drawGrid() {
    const layers = model.get("layers"), heads = model.get("heads");
    const meta = model.get("thumb_meta"), side = meta.size;
    const data = bytesOf(model.get("thumbs"));
    const n = tokens().length, causal = model.get("causal"), colors = lut(scale.value);
    const cols = heads.length + 1, rows = layers.length + 1, pad = 36, gap = 3;
    const width = Math.max(320, (stage.clientWidth || el.clientWidth || 900) - 8);
    const cell = Math.max(22, Math.min(72, Math.floor((width - pad) / cols) - gap));
    const canvas = document.createElement("canvas");
    canvas.className = "aigc-attn-grid";
    canvas.width = pad + cols * (cell + gap);
    canvas.height = 18 + rows * (cell + gap);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = getComputedStyle(el).color;
    ctx.font = "11px sans-serif";
    heads.forEach((h, j) => ctx.fillText(`H${h}`, pad + j * (cell + gap), 12));
    ctx.fillText("mean", pad + heads.length * (cell + gap), 12);
    const spots = [];
    const place = (index, layer, head, x, y) => {
      const bytes = data.subarray(index * side * side, (index + 1) * side * side);
      ctx.drawImage(picture(bytes, side, n, causal, colors), x, y, cell, cell);
      spots.push({ x, y, layer, head });
    };
    layers.forEach((layer, i) => {
      const y = 18 + i * (cell + gap);
      ctx.fillText(`L${layer}`, 2, y + cell / 2 + 4);
      heads.forEach((head, j) => place(i * heads.length + j, layer, head, pad + j * (cell + gap), y));
      place(layers.length * heads.length + i, layer, -1, pad + heads.length * (cell + gap), y);
    });
    const y = 18 + layers.length * (cell + gap);
    ctx.fillText("roll", 2, y + cell / 2 + 4);
    place(layers.length * heads.length + layers.length, -1, -1, pad, y);
    const hit = (event) => {
      const box = canvas.getBoundingClientRect();
      const x = (event.clientX - box.left) * (canvas.width / box.width), yy = (event.clientY - box.top) * (canvas.height / box.height);
      return spots.find((s) => x >= s.x && x < s.x + cell && yy >= s.y && yy < s.y + cell);
    };
    canvas.addEventListener("mousemove", (event) => {
      const spot = hit(event);
      spot ? showTip(event, `${label(spot.layer, spot.head)}\nclick to open`) : hideTip();
    });
    canvas.addEventListener("mouseleave", hideTip);
    canvas.addEventListener("click", (event) => {
      const spot = hit(event);
      if (!spot) return;
      hideTip();
      Object.assign(state, { layer: spot.layer, head: spot.head, query: null, locked: false });
      setMode("head");
    });
    stage.replaceChildren(canvas);
    canvas.dataset.drawn = "true";
    el.dataset.gridDrawnMs = String(Math.round(performance.now() - started));
  }

  async function drawHead() {
    if (state.layer === null) Object.assign(state, { layer: model.get("layers")[0], head: model.get("heads")[0] });
    status.textContent = `loading ${label(state.layer, state.head)}…`;
    const map = await fetchMap(state.layer, state.head);
    status.textContent = label(state.layer, state.head);
    const toks = tokens(), n = map.n;
    const labels = n <= LABELS_MAX_TOKENS;
    const margin = labels ? 90 : 8;
    const size = Math.max(256, Math.min(720, (stage.clientWidth || 760) - margin - 12));
    const cell = size / n;
    const canvas = document.createElement("canvas");
    canvas.className = "aigc-attn-head";
    canvas.width = margin + size;
    canvas.height = margin + size;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = dark() ? "#1e1e1e" : "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const image = picture(map.bytes, n, n, model.get("causal"), lut(scale.value));
    ctx.drawImage(image, margin, margin, size, size);
    if (labels) {
      ctx.fillStyle = dark() ? "#ddd" : "#333";
      ctx.font = `${Math.min(11, Math.max(7, cell))}px monospace`;
      toks.forEach((t, i) => {
        const text = JSON.stringify(t).slice(1, -1).slice(0, 12);
        ctx.textAlign = "right";
        ctx.fillText(text, margin - 4, margin + (i + 0.75) * cell);
        ctx.save();
        ctx.translate(margin + (i + 0.75) * cell, margin - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left";
        ctx.fillText(text, 0, 0);
        ctx.restore();
      });
    }
    if (answer.length === 2 && answer[0] < n) {  // where the answer begins: a dashed line across and down
      const at = answer[0] * cell;
      ctx.save();
      ctx.strokeStyle = "#e65100";
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(margin, margin + at); ctx.lineTo(margin + size, margin + at);
      ctx.moveTo(margin + at, margin); ctx.lineTo(margin + at, margin + size);
      ctx.stroke();
      ctx.restore();
      ctx.fillStyle = "#e65100";
      ctx.font = "bold 11px sans-serif";
      ctx.textAlign = "left";
      ctx.fillText("answer ↓", margin + size + 2 > canvas.width - 50 ? margin + 2 : margin + size + 2, margin + at + 12);
    }
    const base = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const value = (q, k) => (map.bytes[q * n + k] / 255) * map.scale;
    function highlight(query) {
      ctx.putImageData(base, 0, 0);
      if (query === null) return;
      ctx.strokeStyle = "#e53935";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(margin, margin + query * cell, size, Math.max(cell, 1.5));
      const top = [...Array(n).keys()].sort((a, b) => value(query, b) - value(query, a)).slice(0, 5);
      ctx.fillStyle = "#e53935";
      for (const k of top) ctx.fillRect(margin + k * cell, margin - 6, Math.max(cell, 2), 5);
      return top;
    }
    const queryAt = (event) => {
      const box = canvas.getBoundingClientRect();
      const y = (event.clientY - box.top) * (canvas.height / box.height) - margin;
      const x = (event.clientX - box.left) * (canvas.width / box.width) - margin;
      if (x < 0 || y < 0 || y >= size) return null;
      return Math.min(n - 1, Math.floor(y / cell));
    };
    canvas.addEventListener("mousemove", (event) => {
      if (state.locked) return;
      const query = queryAt(event);
      if (query === null) { hideTip(); highlight(null); return; }
      const top = highlight(query);
      const lines = top.map((k) => `  ${JSON.stringify(toks[k])} #${k}: ${value(query, k).toFixed(3)}`);
      showTip(event, `query ${JSON.stringify(toks[query])} #${query} attends to\n${lines.join("\n")}`);
      canvas.dataset.query = String(query);
    });
    canvas.addEventListener("mouseleave", () => { if (!state.locked) { hideTip(); highlight(null); } });
    canvas.addEventListener("click", (event) => {
      state.locked = !state.locked;
      state.query = state.locked ? queryAt(event) : null;
      status.textContent = label(state.layer, state.head) + (state.locked ? ` · locked on #${state.query} (click to release)` : "");
    });
    stage.replaceChildren(canvas);
    canvas.dataset.drawn = "true";
  }

  async function drawLines() {
    const toks = tokens();
    if (toks.length > LINES_MAX_TOKENS) {
      stage.textContent = `The token view shows inputs of up to ${LINES_MAX_TOKENS} tokens; use the head view for ${toks.length}.`;
      return;
    }
    if (state.layer === null) Object.assign(state, { layer: model.get("layers")[0], head: model.get("heads")[0] });
    const map = await fetchMap(state.layer, state.head);
    status.textContent = label(state.layer, state.head) + " · hover a token on the left";
    const n = map.n, row = 18, width = 520;
    const canvas = document.createElement("canvas");
    canvas.className = "aigc-attn-lines";
    canvas.width = width;
    canvas.height = n * row + 10;
    const ctx = canvas.getContext("2d");
    const draw = (query) => {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.font = "12px monospace";
      ctx.fillStyle = dark() ? "#ddd" : "#222";
      toks.forEach((t, i) => {
        const text = JSON.stringify(t).slice(1, -1).slice(0, 16);
        ctx.textAlign = "right";
        ctx.fillText(text, 150, 14 + i * row);
        ctx.textAlign = "left";
        ctx.fillText(text, width - 150, 14 + i * row);
      });
      const queries = query === null ? [...Array(n).keys()] : [query];
      for (const q of queries) {
        for (let k = 0; k < n; k++) {
          const a = map.bytes[q * n + k] / 255;
          if (a < 0.02) continue;
          ctx.strokeStyle = `rgba(25, 118, 210, ${query === null ? a * 0.5 : a})`;
          ctx.lineWidth = query === null ? 1 : 2;
          ctx.beginPath();
          ctx.moveTo(156, 10 + q * row);
          ctx.lineTo(width - 156, 10 + k * row);
          ctx.stroke();
        }
      }
    };
    draw(null);
    canvas.addEventListener("mousemove", (event) => {
      const box = canvas.getBoundingClientRect();
      const y = (event.clientY - box.top) * (canvas.height / box.height);
      const q = Math.min(n - 1, Math.max(0, Math.floor(y / row)));
      draw(q);
    });
    canvas.addEventListener("mouseleave", () => draw(null));
    stage.replaceChildren(canvas);
    canvas.dataset.drawn = "true";
  }

  async function drawAnswer() {
    // one row per generated token: the attention it paid to every token before it (prompt | answer so far)
    if (state.layer === null) {
      const layers = model.get("layers");
      Object.assign(state, { layer: layers[layers.length - 1], head: -1 });
    }
    const map = await fetchMap(state.layer, state.head);
    const toks = tokens(), n = map.n, [start, end] = answer;
    status.textContent = `${label(state.layer, state.head)} · each generated token's attention (open another map in the grid to change it)`;
    const labelWidth = 120, row = 16, width = Math.max(480, (stage.clientWidth || 760) - 12);
    const cell = Math.max(2, (width - labelWidth - 10) / n);
    const canvas = document.createElement("canvas");
    canvas.className = "aigc-attn-answer";
    canvas.width = labelWidth + n * cell + 10;
    canvas.height = 22 + (end - start) * row;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = dark() ? "#1e1e1e" : "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const value = (q, k) => (map.bytes[q * n + k] / 255) * map.scale;
    const colors = lut(scale.value);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = dark() ? "#ddd" : "#333";
    ctx.fillText("prompt", labelWidth, 12);
    ctx.fillStyle = "#e65100";
    ctx.fillText("answer →", labelWidth + start * cell + 3, 12);
    for (let q = start; q < end; q++) {
      const y = 18 + (q - start) * row;
      let top = 0;
      for (let k = 0; k <= q; k++) top = Math.max(top, value(q, k));
      for (let k = 0; k < n; k++) {
        if (k > q) { ctx.fillStyle = dark() ? "#3c3c42" : "#e2e2e6"; }
        else {
          const level = Math.round(255 * Math.sqrt(value(q, k) / (top || 1))) * 4;
          ctx.fillStyle = `rgb(${colors[level]}, ${colors[level + 1]}, ${colors[level + 2]})`;
        }
        ctx.fillRect(labelWidth + k * cell, y, Math.max(cell - (cell > 4 ? 1 : 0), 1), row - 2);
      }
      ctx.fillStyle = dark() ? "#ddd" : "#222";
      ctx.font = "12px monospace";
      ctx.textAlign = "right";
      ctx.fillText(JSON.stringify(toks[q]).slice(1, -1).slice(0, 14), labelWidth - 6, y + row - 5);
      ctx.textAlign = "left";
    }
    ctx.strokeStyle = "#e65100";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(labelWidth + start * cell - 0.5, 14);
    ctx.lineTo(labelWidth + start * cell - 0.5, canvas.height);
    ctx.stroke();
    canvas.addEventListener("mousemove", (event) => {
      const box = canvas.getBoundingClientRect();
      const y = (event.clientY - box.top) * (canvas.height / box.height) - 18;
      const q = start + Math.floor(y / row);
      if (y < 0 || q >= end) { hideTip(); return; }
      const keys = [...Array(q + 1).keys()].sort((a, b) => value(q, b) - value(q, a)).slice(0, 5);
      const lines = keys.map((k) => `  ${JSON.stringify(toks[k])} #${k}${k >= start ? " (answer)" : ""}: ${value(q, k).toFixed(3)}`);
      showTip(event, `generated ${JSON.stringify(toks[q])} #${q} looked at\n${lines.join("\n")}`);
      canvas.dataset.query = String(q);
    });
    canvas.addEventListener("mouseleave", hideTip);
    stage.replaceChildren(canvas);
    canvas.dataset.drawn = "true";
    canvas.dataset.rows = String(end - start);
  }

  function setMode(mode) {
    state.mode = mode;
    for (const [name, b] of Object.entries(modes)) b.classList.toggle("active", name === mode);
    if (mode === "grid") { status.textContent = "click a map to open it"; drawGrid(); }
    else if (mode === "head") drawHead().catch((e) => (status.textContent = e.message));
    else if (mode === "answer") drawAnswer().catch((e) => (status.textContent = e.message));
    else drawLines().catch((e) => (status.textContent = e.message));
  }
  for (const [name, b] of Object.entries(modes)) b.addEventListener("click", () => setMode(name));
  scale.addEventListener("change", () => setMode(state.mode));
  exporter.addEventListener("click", () => {
    const canvas = stage.querySelector("canvas");
    if (!canvas) return;
    const url = canvas.toDataURL("image/png");
    const link = document.createElement("a");
    link.href = url;
    link.download = state.mode === "grid" ? "attention-grid.png" : `attention-${state.layer}-${state.head}.png`;
    el.dataset.exportBytes = String(Math.round((url.length - 22) * 0.75));
    document.body.append(link);
    link.click();
    link.remove();
  });
  title.textContent = `${model.get("model_name")} · ${plural(tokens().length, "token")} · ${plural(model.get("layers").length, "layer")} × ${plural(model.get("heads").length, "head")}`;
  setMode("grid");
  return unframe;
}

export default { render };
