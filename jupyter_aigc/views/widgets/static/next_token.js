// Front end of NextTokenView (%%aigc_next): the raw scores of the whole vocabulary arrive once as float32;
// temperature, top-k and top-p reshape them here, in the browser, with transformers' rule and order (the
// same as jupyter_aigc.tasks.teach.distribution). Moving a slider sends nothing to the kernel; only adding a
// token (Greedy, Sample, a click on a bar), Undo and Reset ask it for a new forward pass.
// Every token and model text goes into the page with textContent.

const BARS = 20;

function pct(p) {
  if (p === 0 || p === 1) return `${100 * p}%`;
  if (p >= 0.1) return (100 * p).toFixed(1) + "%";
  if (p >= 0.001) return (100 * p).toFixed(2) + "%";
  return (100 * p).toPrecision(2) + "%";
}

function fmt(x, digits = 3) {
  return String(Number(x.toPrecision(digits)));
}

// token ids, most likely first (ties: lower id first, like numpy's stable argsort of -scores)
function argsort(scores) {
  const order = new Uint32Array(scores.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => (scores[b] > scores[a] ? 1 : scores[b] < scores[a] ? -1 : a - b));
  return order;
}

// temperature, then top-k, then top-p (TopPLogitsWarper), all in float64. The kept tokens are always the
// most likely ones, so the result is a prefix of `order`: probs[r] is the probability of order[r].
function transform(scores, order, temperature, topK, topP) {
  if (!order.length) return { probs: new Float64Array(0), kept: 0 };
  if (!(temperature > 0)) return { probs: Float64Array.of(1), kept: 1 };
  let kept = order.length;
  if (topK && topK < kept) kept = topK;
  const probs = new Float64Array(kept);
  const best = scores[order[0]] / temperature;
  let sum = 0;
  for (let r = 0; r < kept; r++) {
    const p = Math.exp(scores[order[r]] / temperature - best);
    probs[r] = p;
    sum += p;
  }
  for (let r = 0; r < kept; r++) probs[r] /= sum;
  if (topP < 1) {
    // drop the least likely tokens whose cumulative mass (ascending) is ≤ 1 − top_p; keep the most likely
    let cumulative = 0;
    let cut = kept;
    for (let r = kept - 1; r >= 1; r--) {
      cumulative += probs[r];
      if (cumulative <= 1 - topP) cut = r;
      else break;
    }
    kept = cut;
    let total = 0;
    for (let r = 0; r < kept; r++) total += probs[r];
    for (let r = 0; r < kept; r++) probs[r] /= total;
    return { probs: probs.subarray(0, kept), kept };
  }
  return { probs, kept };
}

function entropyBits(probs) {
  let h = 0;
  for (const p of probs) if (p > 0) h -= p * Math.log2(p);
  return h + 0; // no −0
}

function slider(label, min, max, step, value, title) {
  const box = el("label", "aigc-next-slider");
  box.title = title;
  const input = el("input");
  Object.assign(input, { type: "range", min, max, step });
  input.value = String(value);
  const shown = el("span", "aigc-next-value");
  box.append(el("span", "aigc-next-label", label), input, shown);
  return { box, input, shown };
}

function render({ model, el: root }) {
  root.classList.add("aigc-next");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  // slider state lives here, never in the model: moving a slider sends nothing
  const state = { temperature: 1, topK: 0, topP: 1 };
  let scores = new Float32Array(0);
  let order = new Uint32Array(0);
  let rankOf = new Int32Array(0);
  let current = { probs: new Float64Array(0), kept: 0 };
  let pending = false;

  const head = el("div", "aigc-next-head");
  const title = el("span", "aigc-next-title", "Next token");
  const modelName = el("span", "aigc-next-model");
  head.append(title, modelName);

  const text = el("div", "aigc-next-text");
  const promptSpan = el("span", "aigc-next-prompt");
  const added = el("span", "aigc-next-added-tokens");
  const cursor = el("span", "aigc-next-cursor", "▍");
  text.append(promptSpan, added, cursor);
  const chosen = el("div", "aigc-next-chosen");

  const controls = el("div", "aigc-next-controls");
  const start = model.get("start") || {};  // %%aigc_next --temperature/--top-k/--top-p: where the sliders start
  const temperature = slider("temperature", 0, 2, 0.05, start.temperature ?? 1, "logits ÷ temperature: below 1 sharpens, above 1 flattens; 0 is greedy");
  const topK = slider("top-k", 0, Math.max(200, start.top_k || 0), 1, start.top_k || 0, "keep only the k most likely tokens (0 = off)");
  const topP = slider("top-p", 0.01, 1, 0.01, start.top_p ?? 1, "keep the most likely tokens until their mass reaches p (1 = off)");
  temperature.input.dataset.control = "temperature";
  topK.input.dataset.control = "top_k";
  topP.input.dataset.control = "top_p";
  const buttons = el("span", "aigc-next-buttons");
  const greedy = el("button", "aigc-next-greedy", "Greedy");
  greedy.title = "add the most likely token";
  const sample = el("button", "aigc-next-sample", "Sample");
  sample.title = "draw a token from the distribution below";
  const undo = el("button", "aigc-next-undo", "Undo");
  const reset = el("button", "aigc-next-reset", "Reset");
  buttons.append(greedy, sample, undo, reset);
  controls.append(temperature.box, topK.box, topP.box, buttons);

  const stats = el("div", "aigc-next-stats");
  const entropy = el("span", "aigc-next-entropy");
  const keptNote = el("span", "aigc-next-kept");
  const pick = el("span", "aigc-next-pick");
  stats.append(entropy, keptNote, pick);

  const bars = el("div", "aigc-next-bars");
  const rule = el("div", "aigc-next-rule",
    "probabilities = softmax(logits ÷ temperature) over the tokens top-k and top-p keep (in that order); " +
    "grey tokens are cut. Double-click a bar to add that token.");
  const error = el("div", "aigc-next-error");
  const busyNote = el("span", "aigc-next-busy-note", "computing…");
  head.append(busyNote);
  root.append(head, text, chosen, controls, stats, bars, rule, error);
  const unframe = frameView(model, root, "next-token");

  function readSliders() {
    state.temperature = parseFloat(temperature.input.value);
    state.topK = parseInt(topK.input.value, 10) || 0;
    state.topP = parseFloat(topP.input.value);
    temperature.shown.textContent = state.temperature === 0 ? "0 (greedy)" : state.temperature.toFixed(2);
    topK.shown.textContent = state.topK ? String(state.topK) : "off";
    topP.shown.textContent = state.topP >= 1 ? "1 (off)" : state.topP.toFixed(2);
  }

  function probOfRank(rank) {
    // rank is 1-based by raw logit
    return rank >= 1 && rank <= current.kept ? current.probs[rank - 1] : 0;
  }

  function tokenText(id) {
    const known = (model.get("top") || []).find((t) => t.id === id);
    return known ? known.text : `#${id}`;
  }

  function drawBars() {
    const top = scores.length ? (model.get("top") || []).slice(0, BARS).filter((t) => t.id >= 0 && t.id < scores.length) : [];
    const rows = [];
    const maxProb = current.kept ? current.probs[0] : 1;
    for (const token of top) {
      const rank = rankOf[token.id] + 1;
      const p = probOfRank(rank);
      const row = el("div", "aigc-next-bar");
      row.dataset.tokenId = String(token.id);
      row.dataset.prob = String(p);
      row.dataset.rank = String(rank);
      if (p === 0) row.classList.add("aigc-next-cut");
      row.title = `${JSON.stringify(token.text)}: rank ${rank}, logit ${fmt(token.logit, 4)}, ` +
        (p === 0 ? "cut (probability 0)" : `probability ${pct(p)}`) + " — double-click to add it";
      const label = el("span", "aigc-next-token", visible(token.text));
      const track = el("span", "aigc-next-track");
      const fill = el("span", "aigc-next-fill");
      fill.style.width = `${Math.max(0, Math.min(100, (100 * p) / Math.max(maxProb, 1e-12)))}%`;
      track.append(fill);
      const value = el("span", "aigc-next-prob", p === 0 ? "cut" : pct(p));
      const logit = el("span", "aigc-next-logit", token.logit.toFixed(2));
      row.append(el("span", "aigc-next-rank", `#${rank}`), label, track, value, logit);
      rows.push(row);
    }
    const others = scores.length - top.length;
    if (others > 0) {
      let rest = 0;
      let restKept = 0;
      for (let r = top.length; r < current.kept; r++) {
        rest += current.probs[r];
        restKept += 1;
      }
      const row = el("div", "aigc-next-bar aigc-next-others");
      row.dataset.prob = String(rest);
      if (rest === 0) row.classList.add("aigc-next-cut");
      const label = el("span", "aigc-next-token aigc-next-others-label",
        `all other ${others.toLocaleString("en-US")} tokens`);
      const track = el("span", "aigc-next-track");
      const fill = el("span", "aigc-next-fill");
      fill.style.width = `${Math.max(0, Math.min(100, (100 * rest) / Math.max(maxProb, 1e-12)))}%`;
      track.append(fill);
      row.title = `${restKept.toLocaleString("en-US")} of them kept`;
      row.append(el("span", "aigc-next-rank", ""), label, track, el("span", "aigc-next-prob", rest === 0 ? "cut" : pct(rest)),
        el("span", "aigc-next-logit", ""));
      rows.push(row);
    }
    const header = el("div", "aigc-next-bar aigc-next-bar-head");
    header.append(el("span", "aigc-next-rank", "rank"), el("span", "aigc-next-token", "token"),
      el("span", "aigc-next-track aigc-next-track-head", "probability (bar relative to the most likely)"),
      el("span", "aigc-next-prob", ""), el("span", "aigc-next-logit", "logit"));
    bars.replaceChildren(header, ...rows);
  }

  function drawStats() {
    const h = entropyBits(current.probs);
    entropy.dataset.entropy = String(h);
    entropy.textContent = `entropy ${h.toFixed(2)} bits`;
    entropy.title = "−Σ p log₂ p over the distribution after temperature, top-k and top-p";
    keptNote.dataset.kept = String(current.kept);
    keptNote.textContent = `${current.kept.toLocaleString("en-US")} of ${scores.length.toLocaleString("en-US")} tokens kept`;
    if (current.kept) {
      const id = order[0];
      pick.dataset.rank = "1";
      pick.textContent = `Greedy would add ${JSON.stringify(tokenText(id))} (rank 1, ${pct(current.probs[0])}); ` +
        `Sample draws from ranks 1–${current.kept.toLocaleString("en-US")}`;
    } else {
      pick.textContent = "";
    }
  }

  function recompute() {
    readSliders();
    current = transform(scores, order, state.temperature, state.topK, state.topP);
    drawBars();
    drawStats();
  }

  function loadScores() {
    scores = floats(model.get("scores"));
    order = argsort(scores);
    rankOf = new Int32Array(scores.length);
    for (let r = 0; r < order.length; r++) rankOf[order[r]] = r;
    recompute();
  }

  function drawText() {
    modelName.textContent = model.get("model_name") || "";
    promptSpan.textContent = model.get("prompt") || "";
    const path = model.get("path") || [];
    added.replaceChildren(...path.map((step, i) => {
      const span = el("span", `aigc-next-added aigc-next-how-${String(step.how).replace(/[^a-z]/g, "")}`, step.text);
      span.dataset.tokenId = String(step.id);
      span.dataset.how = step.how;
      span.title = `token ${i + 1}: ${JSON.stringify(step.text)} — ${step.how}, probability ${pct(step.prob)}, rank ${step.rank}`;
      return span;
    }));
    chosen.replaceChildren();
    if (path.length) {
      chosen.append(el("span", "aigc-next-chosen-label", "added: "));
      path.forEach((step, i) => {
        const item = el("span", "aigc-next-step");
        item.dataset.how = step.how;
        item.append(el("span", "aigc-next-step-token", visible(step.text)),
          el("span", "aigc-next-step-how", ` ${step.how} · ${pct(step.prob)} · rank ${step.rank}`));
        chosen.append(item);
        if (i < path.length - 1) chosen.append(el("span", "aigc-next-sep", " → "));
      });
    } else {
      chosen.append(el("span", "aigc-next-chosen-label", "no token added yet: Greedy, Sample or double-click a bar"));
    }
    drawBusy();
  }

  function drawBusy() {
    const busy = !!model.get("busy") || pending;
    root.classList.toggle("aigc-next-busy", busy);
    busyNote.style.visibility = busy ? "visible" : "hidden";
    greedy.disabled = sample.disabled = busy || !current.kept;
    const empty = !(model.get("path") || []).length;
    undo.disabled = reset.disabled = busy || empty;
    error.textContent = model.get("error") || "";
  }

  function append(rank, how) {
    if (pending || model.get("busy") || rank < 1 || rank > order.length) return;
    const id = order[rank - 1];
    pending = true;
    drawBusy();
    model.send({ type: "append", id, prob: probOfRank(rank), rank, how });
  }

  function command(type) {
    if (pending || model.get("busy")) return;
    pending = true;
    drawBusy();
    model.send({ type });
  }

  for (const s of [temperature, topK, topP]) {
    on(s.input, "input", recompute);
    on(s.input, "change", recompute);
  }
  on(greedy, "click", () => append(1, "greedy"));
  on(sample, "click", () => {
    if (!current.kept) return;
    let r = Math.random();
    let rank = current.kept;
    for (let i = 0; i < current.kept; i++) {
      r -= current.probs[i];
      if (r < 0) {
        rank = i + 1;
        break;
      }
    }
    append(rank, "sample");
  });
  on(undo, "click", () => command("undo"));
  on(reset, "click", () => command("reset"));
  // one click only marks a bar (a stray click must not change the text); a double click adds its token
  const barOf = (event) => (event.target instanceof Element ? event.target.closest(".aigc-next-bar[data-token-id]") : null);
  on(bars, "click", (event) => {
    const row = barOf(event);
    for (const marked of bars.querySelectorAll(".aigc-next-marked")) marked.classList.remove("aigc-next-marked");
    if (row) row.classList.add("aigc-next-marked");
  });
  on(bars, "dblclick", (event) => {
    const row = barOf(event);
    if (row) append(Number(row.dataset.rank), "click");
  });

  const handlers = {
    "change:scores": loadScores,
    "change:top": () => recompute(),
    "change:path": () => {
      pending = false;
      drawText();
    },
    "change:prompt": drawText,
    "change:model_name": drawText,
    "change:busy": () => {
      if (!model.get("busy")) pending = false;
      drawBusy();
    },
    "change:error": () => {
      pending = false;
      drawBusy();
    },
  };
  for (const [name, handler] of Object.entries(handlers)) model.on(name, handler);
  loadScores();
  drawText();

  return () => {
    for (const [name, handler] of Object.entries(handlers)) model.off(name, handler);
    listeners.abort();
    unframe();
  };
}

export default { render };
