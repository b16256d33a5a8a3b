// Front end of VocabularyView (jupyter_aigc.train_tokenizer, %%aigc_tokens --train): a BPE vocabulary trained
// on the class's text. The merges arrive once, in the order they were learned; the vocabulary-size slider keeps
// the first ones and tokenises the text again here, in the browser (the same BPE loop as the tokenizers
// library, with only those merges), so moving it sends nothing to the kernel. Text goes in with textContent.

function render({ model, el: root }) {
  root.classList.add("aigc-tokens", "aigc-vocab");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const head = el("div", "aigc-tokens-head");
  const controls = el("div", "aigc-vocab-controls");
  const label = el("span", "aigc-vocab-label", "vocabulary size");
  const slider = el("input");
  slider.type = "range";
  slider.dataset.control = "vocab_size";
  const value = el("span", "aigc-vocab-value");
  controls.append(label, slider, value);
  const stats = el("div", "aigc-vocab-stats");
  const strip = el("div", "aigc-tokens-strip aigc-vocab-strip");
  const lower = el("div", "aigc-vocab-lower");
  const chartBox = el("figure", "aigc-vocab-figure");
  const chart = el("canvas", "aigc-vocab-chart");
  chartBox.append(chart, el("figcaption", "", "tokens needed for the text, by vocabulary size (the dot: now)"));
  const learned = el("div", "aigc-vocab-learned");
  const list = el("ol", "aigc-vocab-merges");
  learned.append(el("div", "aigc-vocab-learned-title", "tokens learned, in order"), list);
  lower.append(chartBox, learned);
  root.append(head, controls, stats, strip, lower);
  const unframe = frameView(model, root, "vocabulary");

  let ranks = new Map();
  let growth = new Float64Array(0);
  const runs = new Map();   // piece → its BPE with every merge

  function shown(symbol) {
    const text = (model.get("shown") || {})[symbol];
    return text === undefined ? symbol : text;
  }

  // the text's token count at every number of merges, from one full BPE run per distinct piece: with the first
  // L merges a piece stops before its first step whose rank (or an earlier one's) is L or more
  function countGrowth(pieces, merges) {
    const delta = new Float64Array(merges + 2);
    const times = new Map();
    for (const piece of pieces) times.set(piece, (times.get(piece) || 0) + 1);
    for (const [piece, n] of times) {
      const run = bpe(Array.from(piece), ranks);
      runs.set(piece, run);
      delta[0] += n * run.states[0].length;
      let highest = -1;
      run.applied.forEach(([, , rank], j) => {
        highest = Math.max(highest, rank);
        delta[highest + 1] += n * (run.states[j + 1].length - run.states[j].length);
      });
    }
    const counts = new Float64Array(merges + 1);
    let total = 0;
    for (let l = 0; l <= merges; l++) {
      total += delta[l];
      counts[l] = total;
    }
    return counts;
  }

  function drawChart(merges, kept) {
    const scale = window.devicePixelRatio || 1;
    const width = 360;
    const height = 170;
    chart.width = width * scale;
    chart.height = height * scale;
    chart.style.width = `${width}px`;
    chart.style.height = `${height}px`;
    const g = chart.getContext("2d");
    g.setTransform(scale, 0, 0, scale, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(root);
    const ink = style.color || "#333";
    const fontSize = Math.round(parseFloat(style.fontSize) * 0.85) || 11;
    g.font = `${fontSize}px ${style.fontFamily || "sans-serif"}`;
    const left = 44;
    const right = width - 10;
    const top = 10;
    const bottom = height - 24;
    const highest = growth.length ? growth[0] : 1;
    const x = (l) => left + ((right - left) * l) / Math.max(1, merges);
    const y = (c) => bottom - ((bottom - top) * c) / Math.max(1, highest);
    g.strokeStyle = "#999";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(left, top);
    g.lineTo(left, bottom);
    g.lineTo(right, bottom);
    g.stroke();
    g.fillStyle = ink;
    g.textAlign = "right";
    g.fillText(String(highest), left - 4, top + fontSize * 0.8);
    g.fillText("0", left - 4, bottom);
    g.textAlign = "left";
    const alphabet = (model.get("alphabet") || []).length;
    g.fillText(String(alphabet), left, bottom + fontSize + 4);
    g.textAlign = "right";
    g.fillText(String(alphabet + merges), right, bottom + fontSize + 4);
    g.strokeStyle = "#1976d2";
    g.lineWidth = 2;
    g.beginPath();
    for (let l = 0; l <= merges; l++) (l ? g.lineTo : g.moveTo).call(g, x(l), y(growth[l]));
    g.stroke();
    g.fillStyle = "#e65100";
    g.beginPath();
    g.arc(x(kept), y(growth[kept]), 4, 0, 2 * Math.PI);
    g.fill();
    chart.dataset.points = String(merges + 1);
  }

  function draw() {
    const alphabet = (model.get("alphabet") || []).length;
    const merges = (model.get("merges") || []).length;
    const size = Math.max(alphabet, Math.min(alphabet + merges, Number(slider.value)));
    const kept = size - alphabet;
    const vocab = model.get("vocab") || {};
    const pieces = model.get("pieces") || [];
    const text = model.get("text") || "";
    root.dataset.size = String(size);

    const tokens = [];
    const cache = new Map();
    for (const piece of pieces) {
      if (!cache.has(piece)) {
        const run = bpe(Array.from(piece), ranks, kept);
        cache.set(piece, run.states[run.states.length - 1]);
      }
      tokens.push(...cache.get(piece));
    }
    strip.dataset.tokens = JSON.stringify(tokens);
    strip.replaceChildren(...tokens.map((t, i) => {
      const box = tokenBox(shown(t), vocab[t], undefined, i, false);
      if (kept > 0 && vocab[t] === alphabet + kept - 1) box.classList.add("aigc-vocab-newest");
      box.title = `token ${i}: id ${vocab[t]}, ${JSON.stringify(shown(t))}`;
      return box;
    }));
    value.textContent = `${size} = ${plural(alphabet, "byte")} + ${plural(kept, "merge")}`;
    stats.dataset.count = String(tokens.length);
    const chars = Array.from(text).length;
    stats.textContent = `${plural(tokens.length, "token")} for ${plural(chars, "character")} ` +
      `(${(chars / Math.max(1, tokens.length)).toFixed(2)} characters per token)`;
    for (const item of list.children) {
      const k = Number(item.dataset.merge);
      item.classList.toggle("aigc-vocab-kept", k < kept);
      item.classList.toggle("aigc-vocab-latest", k === kept - 1);
    }
    const latest = list.children[kept - 1];
    if (latest) list.scrollTop = Math.max(0, latest.offsetTop - list.clientHeight / 2);  // the list is positioned
    drawChart(merges, kept);
  }

  function load() {
    const alphabet = model.get("alphabet") || [];
    const merges = model.get("merges") || [];
    ranks = rankTable(merges.map(([left, right], rank) => [left, right, rank]));
    runs.clear();
    growth = countGrowth(model.get("pieces") || [], merges.length);
    const requested = model.get("requested") || 0;
    head.replaceChildren(el("strong", "aigc-tokens-title", "A BPE vocabulary trained on the text"),
      el("span", "aigc-tokens-stats", `${plural(alphabet.length, "byte")} (the base symbols) + ` +
        `${plural(merges.length, "merge")} = ${plural(alphabet.length + merges.length, "token")}` +
        (alphabet.length + merges.length < requested ? ` (asked for ${requested}: no pair was left to merge)` : "")));
    Object.assign(slider, { min: alphabet.length, max: alphabet.length + merges.length, step: 1 });
    slider.value = String(model.get("size") || alphabet.length + merges.length);
    list.replaceChildren(...merges.map(([left, right], k) => {
      const item = el("li", "aigc-vocab-merge");
      item.dataset.merge = String(k);
      item.append(el("span", "aigc-vocab-rank", `${alphabet.length + k + 1}.`), el("code", "", visible(shown(left))),
        el("span", "", " + "), el("code", "", visible(shown(right))), el("span", "", " → "),
        el("code", "aigc-vocab-new", visible(shown(left + right))));
      item.title = `vocabulary size ${alphabet.length + k + 1}: click to cut the vocabulary here`;
      return item;
    }));
    draw();
  }

  on(slider, "input", draw);
  on(slider, "change", draw);
  on(list, "click", (event) => {
    const item = event.target instanceof Element ? event.target.closest(".aigc-vocab-merge") : null;
    if (!item) return;
    slider.value = String((model.get("alphabet") || []).length + Number(item.dataset.merge) + 1);
    draw();
  });
  const handlers = ["change:merges", "change:pieces", "change:alphabet", "change:size"];
  for (const name of handlers) model.on(name, load);
  load();

  return () => {
    for (const name of handlers) model.off(name, load);
    listeners.abort();
    unframe();
  };
}

export default { render };
