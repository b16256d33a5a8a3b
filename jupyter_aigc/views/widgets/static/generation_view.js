// Front end of GenerationView (%%aigc_generate): one panel per strategy (side by side when compared). Every
// step's numbers arrived once in `runs`; the step slider, the candidates, the beam tree and its details, and the
// key/value cache chart are drawn here and send nothing to the kernel. Token and model text goes in with
// textContent only (SVG text included).

const NAMES = { greedy: "Greedy", sample: "Sampling", beam: "Beam search" };
const SVG_NS = "http://www.w3.org/2000/svg";
const STATUS = {
  kept: "kept: one of the beams that go on",
  ended: "ended: an end token, or the step limit, among the best; it joins the finished beams if it beats them",
  pruned: "pruned: not among the best, dropped",
};

// SVG paint as attributes, so a saved picture (which carries no style sheet) keeps it
const INK = "#222222", GREY = "#666666", BLUE = "#1976d2", ORANGE = "#ef6c00";
const PAINT = {
  root: { fill: "#dddddd", stroke: "#999999", "stroke-width": 1 },
  kept: { fill: "#dceafa", stroke: BLUE, "stroke-width": 1 },
  ended: { fill: "#f2f2f2", stroke: "#777777", "stroke-width": 1, "stroke-dasharray": "4 2" },
  pruned: { fill: "#f4f4f4", stroke: "#bbbbbb", "stroke-width": 1 },
  final: { fill: "#fdebc0", stroke: "#f9a825", "stroke-width": 2 },
};
const EDGE = {
  kept: { stroke: BLUE, "stroke-opacity": 0.6, "stroke-width": 1 },
  ended: { stroke: BLUE, "stroke-opacity": 0.6, "stroke-width": 1 },
  pruned: { stroke: "#c4c4c4", "stroke-width": 1, "stroke-dasharray": "3 3" },
  path: { stroke: ORANGE, "stroke-width": 2 },
};

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function pct(p) {
  if (p >= 0.1) return (100 * p).toFixed(1) + "%";
  if (p >= 0.001) return (100 * p).toFixed(2) + "%";
  if (p === 0) return "0%";
  return (100 * p).toPrecision(2) + "%";
}

const count = (n) => Math.round(n).toLocaleString("en-US");

function size(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " kB";
  return `${n} B`;
}

function short(text, limit) {
  const shown = visible(text);
  return shown.length <= limit ? shown : shown.slice(0, limit - 1) + "…";
}

function settingsText(run) {
  const s = run.settings || {};
  if (run.strategy === "sample") {
    return `temperature ${s.temperature} · top-k ${s.top_k || "off"} · top-p ${s.top_p >= 1 ? "off" : s.top_p} · ` +
      `seed ${s.seed} (--seed ${s.seed} draws the same tokens)`;
  }
  if (run.strategy === "beam") return `${s.num_beams} beams · length penalty ${s.length_penalty} · as transformers' generate(num_beams=${s.num_beams})`;
  return "the most likely token at every step";
}

function fontPx(root) {
  const px = parseFloat(getComputedStyle(root).fontSize);
  return px > 0 ? px : 12;
}

function runPanel(run, root, on) {
  const beam = run.strategy === "beam";
  const steps = run.steps || [];
  const nodes = run.nodes || [];
  const last = Math.max(0, steps.length - 1);
  const state = { step: last, node: beam && run.beams?.length ? run.beams[0].node : -1 };

  const panel = el("div", "aigc-gen-run");
  panel.dataset.strategy = run.strategy;
  const title = el("div", "aigc-gen-title");
  title.append(el("strong", "", NAMES[run.strategy] || run.strategy), el("span", "aigc-gen-settings", settingsText(run)));
  const text = el("div", "aigc-gen-text");
  const controls = el("div", "aigc-gen-controls");
  const prev = el("button", "aigc-gen-prev", "◀");
  prev.title = "the step before";
  const slider = el("input");
  Object.assign(slider, { type: "range", min: 0, max: last, step: 1 });
  slider.value = String(last);
  slider.dataset.control = "step";
  const next = el("button", "aigc-gen-next", "▶");
  next.title = "the next step";
  const where = el("span", "aigc-gen-where");
  controls.append(prev, slider, next, where);
  const detail = el("div", "aigc-gen-detail");
  const tree = el("div", "aigc-gen-tree");
  const info = el("div", "aigc-gen-info");
  const cache = el("div", "aigc-gen-cache");
  const finals = el("div", "aigc-gen-finals");
  panel.append(title, text, controls, detail);
  if (beam) panel.append(tree, info, finals);
  panel.append(cache);

  const pathOf = (id) => {
    const path = [];
    for (let n = id; n >= 0; n = nodes[n].parent) path.unshift(nodes[n]);
    return path;
  };

  function drawText() {
    const prompt = el("span", "aigc-gen-prompt", (run.prompt || "").length > 160 ? "…" + run.prompt.slice(-160) : run.prompt || "");
    prompt.title = "the prompt";
    const pieces = beam ? pathOf(state.node).map((n) => ({ text: n.text, step: n.step })) :
      (run.tokens || []).map((t, i) => ({ text: t, step: i }));
    text.replaceChildren(prompt, ...pieces.map(({ text: token, step }) => {
      const span = el("span", "aigc-gen-token", visible(token));
      span.title = `step ${step}: ${JSON.stringify(token)}`;
      span.dataset.step = String(step);
      if (step === state.step) span.classList.add("aigc-gen-current");
      if (step > state.step) span.classList.add("aigc-gen-later");
      return span;
    }));
  }

  function drawCandidates() {
    const step = steps[state.step];
    if (!step) return detail.replaceChildren();
    const taken = step.token;
    const sample = run.strategy === "sample";
    const note = el("div", "aigc-gen-note");
    note.append(el("span", "", sample ? "Sampling drew " : "Greedy takes the most likely token: "),
      el("code", "aigc-gen-code", visible(taken.text)),
      el("span", "", sample ? ` (rank ${taken.rank} by the model, ${pct(taken.p)} after the settings), ` +
        `from the ${plural(step.kept, "token")} temperature, top-k and top-p left.` : ` (${pct(taken.p)}).`));
    const bars = el("div", "aigc-gen-bars");
    const top = Math.max(...step.candidates.map((c) => c.p), 1e-12);
    for (const c of step.candidates) {
      const row = el("div", "aigc-gen-bar");
      row.dataset.tokenId = String(c.id);
      if (c.id === taken.id) row.classList.add("aigc-gen-taken");
      if (sample && c.p === 0) row.classList.add("aigc-gen-cut");
      const token = el("span", "aigc-gen-cand", visible(c.text));
      token.title = JSON.stringify(c.text);
      const track = el("span", "aigc-gen-track");
      const fill = el("span", "aigc-gen-fill");
      fill.style.width = `${(100 * c.p) / top}%`;
      track.append(fill);
      const prob = el("span", "aigc-gen-prob", pct(c.p));
      row.append(token, track, prob);
      if (sample) row.append(el("span", "aigc-gen-raw", `model ${pct(c.raw)}`));
      row.append(el("span", "aigc-gen-mark", c.id === taken.id ? (sample ? "← drawn" : "← taken") : ""));
      bars.append(row);
    }
    detail.replaceChildren(note, bars);
  }

  function drawBeams() {
    const step = steps[state.step];
    if (!step) return detail.replaceChildren();
    const list = el("div", "aigc-gen-beams");
    list.append(el("div", "aigc-gen-note", state.step === 0 ? "Step 0: one beam, the prompt. Its best next tokens:" :
      `Step ${state.step}: the ${step.beams.length} running beams (cumulative log-probability) and each one's best next tokens:`));
    for (const b of step.beams) {
      const row = el("div", "aigc-gen-beam");
      const path = b.node >= 0 ? pathOf(b.node).map((n) => visible(n.text)).join("") : "(prompt)";
      row.append(el("code", "aigc-gen-code", short(path, 40)), el("span", "aigc-gen-score", b.score.toFixed(2)),
        el("span", "aigc-gen-then", "→ " + b.top.map((t) => `${visible(t.text)} ${t.logp.toFixed(2)}`).join(" · ")));
      list.append(row);
    }
    list.append(el("div", "aigc-gen-note",
      `transformers weighs the ${step.candidates.length} best of (beam score + log P(token)) over every beam's tokens; ` +
      "the best that did not end go on. Click a box in the tree for its numbers."));
    detail.replaceChildren(list);
  }

  function drawTree() {
    const f = fontPx(root) / 12;
    const perStep = Math.max(1, ...steps.map((s) => s.candidates.length));
    const col = 118 * f, row = 26 * f, left = 80 * f, top = 8 * f, box = col - 20 * f;
    const width = left + col * steps.length + 8, height = top * 2 + row * perStep;
    const picture = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "aigc-gen-svg" });
    const at = (n) => [left + n.step * col, top + n.rank * row + row / 2];
    const onPath = new Set(pathOf(state.node).map((n) => n.id));
    const edges = svg("g"), boxes = svg("g");
    const rootBox = svg("g", { class: "aigc-gen-node aigc-gen-root" });
    rootBox.append(svg("rect", { x: 4, y: top + 2, width: left - 22 * f, height: row - 4, rx: 3, ...PAINT.root }),
      svg("text", { x: 8, y: top + row / 2 + 4 * f, fill: INK }, "prompt"));
    boxes.append(rootBox);
    for (const n of nodes) {
      const [x, y] = at(n);
      const [px, py] = n.parent < 0 ? [left - 18 * f, top + row / 2] : ((p) => [at(p)[0] + box, at(p)[1]])(nodes[n.parent]);
      const mid = (px + x) / 2;
      const later = n.step > state.step ? { visibility: "hidden" } : {};
      const edge = svg("path", { d: `M${px},${py} C${mid},${py} ${mid},${y} ${x},${y}`, fill: "none",
        class: `aigc-gen-edge aigc-gen-${n.status}`, ...(onPath.has(n.id) ? EDGE.path : EDGE[n.status]), ...later });
      const group = svg("g", { class: `aigc-gen-node aigc-gen-${n.status}`, ...later });
      group.dataset.node = String(n.id);
      group.dataset.step = String(n.step);
      group.dataset.status = n.status;
      const paint = { ...PAINT[n.final >= 0 ? "final" : n.status] };
      if (n.final >= 0) group.classList.add("aigc-gen-final");
      if (onPath.has(n.id)) {
        group.classList.add("aigc-gen-onpath");
        edge.classList.add("aigc-gen-onpath");
        paint["stroke-width"] = Math.max(2, paint["stroke-width"]);
      }
      if (n.id === state.node) {
        group.classList.add("aigc-gen-selected");
        Object.assign(paint, { stroke: ORANGE, "stroke-width": 3, "stroke-dasharray": "none" });
      }
      if (later.visibility) {
        group.classList.add("aigc-gen-future");
        edge.classList.add("aigc-gen-future");
      }
      const faint = n.status === "pruned" && n.final < 0 ? { "fill-opacity": 0.55 } : {};
      group.append(svg("rect", { x, y: y - row / 2 + 2, width: box, height: row - 4, rx: 3, ...paint }),
        svg("text", { x: x + 4 * f, y: y + 4 * f, class: "aigc-gen-node-token", fill: INK, "font-family": "monospace", ...faint },
          short(n.text, 7)),
        svg("text", { x: x + box - 4 * f, y: y + 4 * f, "text-anchor": "end", "font-size": "0.85em", fill: GREY }, n.score.toFixed(2)));
      const tip = `step ${n.step}: ${JSON.stringify(n.text)}, log P ${n.score.toFixed(3)} — ${n.final >= 0 ? `final beam ${n.final + 1}` : n.status}`;
      group.append(svg("title", {}, tip));
      edges.append(edge);
      boxes.append(group);
    }
    picture.append(edges, boxes);
    const legend = el("div", "aigc-gen-legend",
      "columns are steps, each box a candidate (its text and cumulative log-probability); blue: kept, gold: a final " +
      "beam, grey: pruned, dashed: ended. Later steps appear as you step on.");
    tree.replaceChildren(picture, legend);
  }

  function drawInfo() {
    const n = nodes[state.node];
    if (!n) return info.replaceChildren(el("span", "", "Click a box in the tree."));
    const lines = [el("div", "aigc-gen-info-path")];
    lines[0].append(el("span", "", `step ${n.step}, from ${n.parent < 0 ? "the prompt" : "beam " + n.beam}: `),
      el("code", "aigc-gen-code", pathOf(n.id).map((m) => visible(m.text)).join("")));
    lines.push(el("div", "", `P(${visible(n.text)}) = ${pct(Math.exp(n.logp))} · log P = ${n.logp.toFixed(3)} · ` +
      `cumulative log P = ${n.score.toFixed(3)} (rank ${n.rank + 1} of the step's candidates)`));
    lines.push(el("div", `aigc-gen-status aigc-gen-${n.status}`, n.status === "kept" ? `kept as beam ${n.slot}` : STATUS[n.status]));
    if (n.final >= 0) {
      const b = run.beams[n.final];
      lines.push(el("div", "aigc-gen-status aigc-gen-final-note",
        `final beam ${n.final + 1}: score ${b.score.toFixed(4)} = ${b.logp.toFixed(3)} / ${b.length}` +
        `${(run.settings?.length_penalty ?? 1) === 1 ? "" : "^" + run.settings.length_penalty} tokens`));
    }
    info.replaceChildren(...lines);
  }

  function drawFinals() {
    const table = el("table", "aigc-gen-table");
    const head = el("tr");
    for (const h of ["#", "final beam", "log P", "tokens", "score"]) head.append(el("th", "", h));
    table.append(head);
    (run.beams || []).forEach((b, i) => {
      const tr = el("tr", "aigc-gen-final-row");
      tr.dataset.node = String(b.node);
      tr.append(el("td", "", String(i + 1)), el("td", "aigc-gen-code", short(b.tokens.join(""), 60)),
        el("td", "aigc-gen-num", b.logp.toFixed(3)), el("td", "aigc-gen-num", String(b.length)),
        el("td", "aigc-gen-num", b.score.toFixed(4)));
      table.append(tr);
    });
    finals.replaceChildren(el("div", "aigc-gen-note", "The beams generate() returns, best first (score = log P / length):"), table);
  }

  function drawCache() {
    const step = steps[state.step];
    if (!step) return cache.replaceChildren();
    const c = run.cache, k = step.cache, ms = step.ms;
    const beams = c.sequences > 1 ? ` × ${c.sequences} beams` : "";
    const formula = el("div", "aigc-gen-formula",
      `Key/value cache after step ${state.step}: 2 × ${plural(c.layers, "layer")} × ${plural(c.kv_heads, "key/value head")} × ${c.head_dim} ` +
      `× ${plural(k.tokens, "token")} × ${c.itemsize} bytes (${c.dtype})${beams} = ${count(k.bytes)} bytes (${size(k.bytes)})`);
    const check = el("div", "aigc-gen-measured", k.measured === k.bytes ? `the cache's own tensors hold ${count(k.measured)} bytes ✓` :
      `the cache's own tensors hold ${count(k.measured)} bytes`);
    const reads = state.step === 0 ? `the prompt's ${plural(k.tokens, "token")} ${k.tokens === 1 ? "fills" : "fill"} the cache` : `reads 1 new token${beams ? " per beam" : ""}`;
    const time = el("div", "aigc-gen-times");
    time.append(el("span", "aigc-gen-cached", `with the cache ${ms.cached.toFixed(1)} ms (${reads})`),
      el("span", "", " · "), el("span", "aigc-gen-full", `without it ${ms.full.toFixed(1)} ms (reads ${ms.full_reads === 1 ? "its 1 token" : "all " + plural(ms.full_reads, "token")} again)`),
      el("span", "aigc-gen-drift", ` · same scores (largest difference ${ms.drift.toPrecision(2)})`));
    cache.replaceChildren(formula, check, time, chart());
  }

  function chart() {
    const f = fontPx(root) / 12;
    const bar = 7 * f, gap = 6 * f, h = 70 * f, base = h + 4;
    const most = Math.max(1e-9, ...steps.map((s) => Math.max(s.ms.cached, s.ms.full)));
    const width = 40 * f + steps.length * (2 * bar + gap), height = base + 16 * f;
    const picture = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "aigc-gen-chart" });
    picture.append(svg("text", { x: 0, y: 10 * f, class: "aigc-gen-axis", fill: GREY }, `${most.toFixed(0)} ms`),
      svg("text", { x: 0, y: base, class: "aigc-gen-axis", fill: GREY }, "0"));
    steps.forEach((s, i) => {
      const x = 40 * f + i * (2 * bar + gap);
      const group = svg("g", { class: "aigc-gen-chart-step" + (i === state.step ? " aigc-gen-chart-current" : "") });
      group.dataset.step = String(i);
      const hc = (h * s.ms.cached) / most, hf = (h * s.ms.full) / most;
      const hit = i === state.step ? { fill: "#e8e8e8" } : { fill: "#ffffff", "fill-opacity": 0 };
      group.append(svg("rect", { x: x - 2, y: 0, width: 2 * bar + 4, height: base, class: "aigc-gen-chart-hit", ...hit }),
        svg("rect", { x, y: base - hc, width: bar, height: hc, class: "aigc-gen-bar-cached", fill: BLUE }),
        svg("rect", { x: x + bar, y: base - hf, width: bar, height: hf, class: "aigc-gen-bar-full", fill: ORANGE }),
        svg("text", { x: x + bar, y: base + 12 * f, "text-anchor": "middle", class: "aigc-gen-axis", fill: GREY }, String(i)),
        svg("title", {}, `step ${i}: ${s.ms.cached.toFixed(1)} ms with the cache, ${s.ms.full.toFixed(1)} ms without`));
      picture.append(group);
    });
    const box = el("div", "aigc-gen-chart-box");
    const key = el("div", "aigc-gen-legend");
    key.append(el("span", "aigc-gen-key-cached", "■"), el("span", "", " a step with the cache  "),
      el("span", "aigc-gen-key-full", "■"), el("span", "", " the same step without it (every token again) — click a step"));
    box.append(picture, key);
    return box;
  }

  function draw() {
    where.textContent = `step ${state.step} of ${last}` + (state.step === 0 ? " (one pass over the prompt)" : "");
    prev.disabled = state.step <= 0;
    next.disabled = state.step >= last;
    slider.value = String(state.step);
    drawText();
    if (beam) {
      drawBeams();
      drawTree();
      drawInfo();
      drawFinals();
    } else {
      drawCandidates();
    }
    drawCache();
  }

  const go = (step) => {
    state.step = Math.max(0, Math.min(last, step));
    draw();
  };
  on(prev, "click", () => go(state.step - 1));
  on(next, "click", () => go(state.step + 1));
  on(slider, "input", () => go(parseInt(slider.value, 10) || 0));
  on(text, "click", (event) => {
    const token = event.target instanceof Element ? event.target.closest(".aigc-gen-token") : null;
    if (token) go(Number(token.dataset.step));
  });
  on(cache, "click", (event) => {
    const group = event.target instanceof Element ? event.target.closest(".aigc-gen-chart-step") : null;
    if (group) go(Number(group.dataset.step));
  });
  const pick = (event) => {
    const target = event.target instanceof Element ? event.target.closest("[data-node]") : null;
    if (!target) return;
    state.node = Number(target.dataset.node);
    if (nodes[state.node] && nodes[state.node].step > state.step) state.step = nodes[state.node].step;
    draw();
  };
  on(tree, "click", pick);
  on(finals, "click", pick);
  return { panel, draw };
}

function render({ model, el: root }) {
  root.classList.add("aigc-gen");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });
  const head = el("div", "aigc-gen-head");
  const body = el("div", "aigc-gen-runs");
  root.append(head, body);
  const unframe = frameView(model, root, "generation");
  let panels = [];

  function draw() {
    const runs = model.get("runs") || [];
    head.replaceChildren(el("strong", "", "Generation, step by step"), el("span", "aigc-gen-model", model.get("model_name") || ""));
    root.classList.toggle("aigc-gen-compare", runs.length > 1);
    panels = runs.map((run) => runPanel(run, root, on));
    body.replaceChildren(...panels.map((p) => p.panel));
    for (const p of panels) p.draw();
  }
  const redraw = () => panels.forEach((p) => p.draw());
  model.on("change:runs", draw);
  model.on("change:model_name", draw);
  draw();
  // sizes follow the font size, known once the view is on the page
  const frame = requestAnimationFrame(redraw);

  return () => {
    cancelAnimationFrame(frame);
    model.off("change:runs", draw);
    model.off("change:model_name", draw);
    listeners.abort();
    unframe();
  };
}

export default { render };
