// Front end of AttentionStepsView (%%aigc_attention --steps): one head worked through for one query token.
// Q, K and V of every token arrive once (float32 [3, n, d]); choosing another query recomputes q·kⱼ, the
// scores, the mask, the softmax and the output here, in the browser, and sends nothing to the kernel.
// Token texts go into the page with textContent.

const SHOWN_NUMBERS = 4;

// 3 significant digits (4 for numbers ≥ 1000 in magnitude stay whole)
function fmt(x) {
  if (!Number.isFinite(x)) return x > 0 ? "∞" : x < 0 ? "−∞" : "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  const text = a >= 1000 ? x.toFixed(0) : a < 1e-4 ? x.toExponential(2) : String(Number(x.toPrecision(3)));
  return text.replace("-", "−");
}

function dark() {
  return document.body.dataset.jpThemeLight === "false";
}

// blue (negative) – neutral – red (positive); t in [-1, 1]
function diverging(t) {
  const u = Math.max(-1, Math.min(1, t));
  const mid = dark() ? [40, 40, 46] : [255, 255, 255];
  const end = u < 0 ? [33, 102, 172] : [178, 24, 43];
  const a = Math.abs(u);
  return mid.map((m, c) => Math.round(m + (end[c] - m) * a));
}

// the colour scale of a kind of vector: the 98th percentile of |x|, so one outlier dimension does not wash
// the others out (larger values saturate)
function colourScale(values) {
  if (!values.length) return 1;
  const sorted = Float64Array.from(values, Math.abs).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(0.98 * sorted.length))] || sorted[sorted.length - 1] || 1;
}

function render({ model, el: root }) {
  root.classList.add("aigc-steps");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  let query = model.get("query") ?? 0;
  let data = null; // {n, d, Q, K, V, scales}

  const head = el("div", "aigc-steps-head");
  const where = el("div", "aigc-steps-where");
  const tokensBox = el("div", "aigc-steps-tokens");
  const hint = el("div", "aigc-steps-hint", "Click a token to make it the query.");
  const formula = el("div", "aigc-steps-formula");
  const qBox = el("div", "aigc-steps-q");
  const tableBox = el("div", "aigc-steps-scroll");
  const outBox = el("div", "aigc-steps-out");
  const legend = el("div", "aigc-steps-legend");
  const tip = el("div", "aigc-steps-tip");
  tip.style.display = "none";
  head.append(where);
  root.append(head, tokensBox, hint, formula, qBox, tableBox, outBox, legend, tip);
  const unframe = frameView(model, root, "attention-steps");

  function showTip(event, text) {
    // placed inside the view (position: absolute), so scrolling and transformed ancestors do not move it away
    const box = root.getBoundingClientRect();
    tip.textContent = text;
    tip.style.left = event.clientX - box.left + 12 + "px";
    tip.style.top = event.clientY - box.top + 14 + "px";
    tip.style.display = "block";
  }
  const hideTip = () => (tip.style.display = "none");

  // a vector as a row of coloured cells on a canvas; hovering shows name[i] = value
  function strip(vector, scale, name) {
    const d = vector.length;
    const cell = Math.max(1, Math.min(6, Math.floor(200 / Math.max(1, d))));
    const canvas = el("canvas", "aigc-steps-strip");
    canvas.width = d * cell;
    canvas.height = 12;
    canvas.style.width = d * cell + "px";
    canvas.style.height = "12px";
    const ctx = canvas.getContext("2d");
    if (ctx) {
      for (let i = 0; i < d; i++) {
        const [r, g, b] = diverging(vector[i] / scale);
        ctx.fillStyle = `rgb(${r},${g},${b})`;
        ctx.fillRect(i * cell, 0, cell, 12);
      }
    }
    canvas.dataset.name = name;
    on(canvas, "mousemove", (event) => {
      const box = canvas.getBoundingClientRect();
      const i = Math.min(d - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * d)));
      showTip(event, `${name}[${i}] = ${fmt(vector[i])}`);
    });
    on(canvas, "mouseleave", hideTip);
    return canvas;
  }

  function firstNumbers(vector) {
    const shown = Array.from(vector.slice(0, SHOWN_NUMBERS), fmt).join(", ");
    return `[${shown}${vector.length > SHOWN_NUMBERS ? ", …" : ""}]`;
  }

  function load() {
    const all = floats(model.get("qkv"));
    const n = (model.get("tokens") || []).length;
    const d = model.get("head_dim") || (n ? all.length / (3 * n) : 0);
    if (!n || !d || all.length < 3 * n * d) {
      data = null;
      return;
    }
    const Q = all.subarray(0, n * d);
    const K = all.subarray(n * d, 2 * n * d);
    const V = all.subarray(2 * n * d, 3 * n * d);
    data = { n, d, Q, K, V, scales: { q: colourScale(Q), k: colourScale(K), v: colourScale(V) } };
    if (query >= n || query < 0) query = n - 1;
  }

  function compute() {
    const { n, d, Q, K, V } = data;
    const scale = model.get("scale") || 1 / Math.sqrt(d);
    const causal = model.get("causal");
    const q = Q.subarray(query * d, (query + 1) * d);
    const dots = new Float64Array(n);
    const scores = new Float64Array(n);
    const masked = new Array(n).fill(false);
    let best = -Infinity;
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += q[i] * K[j * d + i];
      dots[j] = dot;
      scores[j] = dot * scale;
      masked[j] = !!causal && j > query;
      if (!masked[j] && scores[j] > best) best = scores[j];
    }
    const weights = new Float64Array(n);
    let sum = 0;
    for (let j = 0; j < n; j++) {
      weights[j] = masked[j] ? 0 : Math.exp(scores[j] - best);
      sum += weights[j];
    }
    for (let j = 0; j < n; j++) weights[j] /= sum;
    const output = new Float64Array(d);
    for (let j = 0; j < n; j++) {
      if (!weights[j]) continue;
      for (let i = 0; i < d; i++) output[i] += weights[j] * V[j * d + i];
    }
    return { q, dots, scores, masked, weights, output, scale };
  }

  function drawWhere() {
    const layer = model.get("layer");
    const headIndex = model.get("head");
    const kv = model.get("kv_head");
    where.replaceChildren();
    where.append(el("strong", "", `Layer ${layer}, head ${headIndex}`), el("span", "", ` of ${model.get("model_name") || "the model"}. `));
    const kvText = kv === headIndex
      ? `Keys and values come from key/value head ${kv}.`
      : `Keys and values come from key/value head ${kv}: grouped-query attention lets several query heads share one key/value head.`;
    const kvSpan = el("span", "aigc-steps-kv", kvText);
    kvSpan.dataset.kvHead = String(kv);
    where.append(kvSpan);
    if (model.get("rotary")) where.append(el("span", "aigc-steps-rotary", " q and k after the rotary position encoding."));
  }

  function drawTokens() {
    const tokens = model.get("tokens") || [];
    const causal = model.get("causal");
    tokensBox.replaceChildren(...tokens.map((text, j) => {
      const chip = el("span", "aigc-steps-token", visible(text));
      chip.dataset.index = String(j);
      chip.title = `token ${j}: ${JSON.stringify(text)} — click to make it the query`;
      if (j === query) chip.classList.add("aigc-steps-query");
      else if (causal && j > query) chip.classList.add("aigc-steps-future");
      return chip;
    }));
  }

  function draw() {
    drawWhere();
    drawTokens();
    const tokens = model.get("tokens") || [];
    if (!data) {
      formula.textContent = "No numbers to show.";
      qBox.replaceChildren();
      tableBox.replaceChildren();
      outBox.replaceChildren();
      return;
    }
    const { n, d, K, V, scales } = data;
    const r = compute();
    root.dataset.query = String(query);

    // the formula, and the numbers of the key that gets the most weight
    let top = 0;
    for (let j = 1; j < n; j++) if (r.weights[j] > r.weights[top]) top = j;
    const root2 = Math.sqrt(d);
    const plain = Math.abs(r.scale * root2 - 1) < 1e-3;
    formula.replaceChildren();
    const general = el("div", "aigc-steps-general");
    general.append(el("span", "aigc-steps-math", "score_j = q · k_j / √d_k"),
      el("span", "", `   with d_k = ${d} (the head size), so √d_k = ${fmt(root2)}` +
        (plain ? "" : `; this model scales by ${fmt(r.scale)} instead of 1/√d_k`)),
      el("span", "", "   ·   weights = softmax(scores)   ·   output = Σ_j weight_j v_j"));
    const example = el("div", "aigc-steps-example");
    const substituted = plain
      ? `score = (q·k)/√${d} = ${fmt(r.dots[top])}/${fmt(root2)} = ${fmt(r.scores[top])}`
      : `score = (q·k) × ${fmt(r.scale)} = ${fmt(r.dots[top])} × ${fmt(r.scale)} = ${fmt(r.scores[top])}`;
    example.append(el("span", "", "Largest weight: key "), el("code", "aigc-steps-code", visible(tokens[top])),
      el("span", "", ` (j = ${top}): `), el("span", "aigc-steps-math", substituted),
      el("span", "", ` → weight ${fmt(r.weights[top])}`));
    example.dataset.key = String(top);
    formula.append(general, example);

    // q
    qBox.replaceChildren();
    const qLabel = el("span", "aigc-steps-label");
    qLabel.append(el("span", "", "query q = "), el("code", "aigc-steps-code", visible(tokens[query])),
      el("span", "", ` (token ${query})`));
    qBox.append(qLabel, strip(r.q, scales.q, "q"), el("span", "aigc-steps-numbers", `${firstNumbers(r.q)}  (${d} numbers)`));

    // one row per key
    const table = el("table", "aigc-steps-table");
    const thead = el("thead");
    const hr = el("tr");
    for (const [text, tip] of [["j", "key position"], ["key", "the token"], ["k_j", "its key vector"],
      ["q·k_j", "dot product"], ["score", "q·k_j / √d_k"], ["weight", "softmax of the scores"],
      ["v_j", "its value vector"]]) {
      const th = el("th", "", text);
      th.title = tip;
      hr.append(th);
    }
    thead.append(hr);
    const tbody = el("tbody");
    for (let j = 0; j < n; j++) {
      const tr = el("tr", r.masked[j] ? "aigc-steps-masked" : "");
      tr.dataset.key = String(j);
      tr.dataset.weight = String(r.weights[j]);
      if (j === top) tr.classList.add("aigc-steps-top");
      if (j === query) tr.classList.add("aigc-steps-self");
      const token = el("td", "aigc-steps-keytoken");
      token.append(el("code", "aigc-steps-code", visible(tokens[j])));
      token.title = JSON.stringify(tokens[j]);
      const kCell = el("td", "aigc-steps-vec");
      kCell.append(strip(K.subarray(j * d, (j + 1) * d), scales.k, `k_${j}`));
      const dot = el("td", "aigc-steps-num", r.masked[j] ? "–" : fmt(r.dots[j]));
      const score = el("td", "aigc-steps-num aigc-steps-score", r.masked[j] ? "−∞ (masked)" : fmt(r.scores[j]));
      if (r.masked[j]) score.title = "a later token: the causal mask hides it";
      const weight = el("td", "aigc-steps-weight");
      const track = el("span", "aigc-steps-track");
      const fill = el("span", "aigc-steps-fill");
      fill.style.width = `${100 * r.weights[j]}%`;
      track.append(fill);
      weight.append(track, el("span", "aigc-steps-wnum", fmt(r.weights[j])));
      const vCell = el("td", "aigc-steps-vec");
      vCell.append(strip(V.subarray(j * d, (j + 1) * d), scales.v, `v_${j}`));
      tr.append(el("td", "aigc-steps-num", String(j)), token, kCell, dot, score, weight, vCell);
      tbody.append(tr);
    }
    table.append(thead, tbody);
    tableBox.replaceChildren(table);

    // the output
    outBox.replaceChildren();
    outBox.append(el("span", "aigc-steps-label", "output = Σ_j weight_j v_j = "), strip(r.output, scales.v, "output"),
      el("span", "aigc-steps-numbers", firstNumbers(r.output)));
    legend.textContent = "Colours: blue < 0 < red, each kind (q, k, v) on its own scale (the largest 2% saturate); hover a strip for its numbers.";
  }

  on(tokensBox, "click", (event) => {
    const chip = event.target instanceof Element ? event.target.closest(".aigc-steps-token") : null;
    if (!chip) return;
    query = Number(chip.dataset.index);
    draw();
  });

  const reload = () => {
    load();
    draw();
  };
  const handlers = {
    "change:qkv": reload,
    "change:tokens": reload,
    "change:head_dim": reload,
    "change:query": () => {
      query = model.get("query");
      draw();
    },
    "change:scale": draw,
    "change:causal": draw,
    "change:rotary": draw,
    "change:kv_head": draw,
    "change:layer": draw,
    "change:head": draw,
    "change:model_name": draw,
  };
  for (const [name, handler] of Object.entries(handlers)) model.on(name, handler);
  reload();

  return () => {
    for (const [name, handler] of Object.entries(handlers)) model.off(name, handler);
    listeners.abort();
    tip.remove();
    unframe();
  };
}

export default { render };
