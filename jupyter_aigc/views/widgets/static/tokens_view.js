// Front end of TokensView (%%aigc_tokens): the text as each tokenizer's tokens (piece, id, bytes), and for a BPE
// tokenizer one word built from its bytes with the model's own merges. Every word's symbols and the merges that
// can fire in them arrive once; choosing a word and stepping through its merges happen here, with no message
// to the kernel. Token strings go into the page with textContent only.

function render({ model, el: root }) {
  root.classList.add("aigc-tokens");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  const head = el("div", "aigc-tokens-head");
  const options = el("label", "aigc-tokens-option");
  const showBytes = el("input");
  showBytes.type = "checkbox";
  showBytes.checked = true;
  showBytes.dataset.control = "bytes";
  options.append(showBytes, el("span", "", " bytes"));
  const rowsBox = el("div", "aigc-tokens-rows");
  const merges = el("div", "aigc-bpe");
  root.append(head, rowsBox, merges);
  const unframe = frameView(model, root, "tokens");

  // the merge stepper's state lives here, never in the model: nothing is sent
  const state = { word: -1, step: 0, run: null };
  let ranks = new Map();

  function drawRows() {
    const rows = model.get("rows") || [];
    const main = rows[0];
    head.replaceChildren();
    if (!main) return;
    head.append(el("strong", "aigc-tokens-title", "Tokens"), el("span", "aigc-tokens-model", main.model),
      el("span", "aigc-tokens-stats",
        `${plural(main.ids.length, "token")} for ${plural(main.chars, "character")} ` +
        `(${plural(main.nbytes, "byte")}) · vocabulary ${main.vocab_size.toLocaleString("en-US")} (${main.kind})`),
      options);
    rowsBox.replaceChildren(...rows.map((row, r) => {
      const box = el("div", "aigc-tokens-row");
      box.dataset.model = row.model;
      box.dataset.count = String(row.ids.length);
      box.dataset.ids = JSON.stringify(row.ids);
      if (rows.length > 1) {
        const label = el("div", "aigc-tokens-label");
        label.append(el("strong", "", row.model), el("span", "", ` · ${plural(row.ids.length, "token")} · ` +
          `vocabulary ${row.vocab_size.toLocaleString("en-US")} (${row.kind})`));
        box.append(label);
      }
      const strip = el("div", "aigc-tokens-strip");
      strip.dataset.row = String(r);
      row.ids.forEach((id, i) => {
        const token = tokenBox(row.pieces[i], id, showBytes.checked ? row.bytes[i] || "" : undefined, i, row.special[i]);
        token.title = `token ${i}: id ${id}, ${JSON.stringify(row.tokens[i])} in the vocabulary, bytes ${row.bytes[i]}` +
          (r === 0 && wordOf(i) >= 0 ? " — click to build its word from its bytes" : "");
        strip.append(token);
      });
      box.append(strip);
      return box;
    }));
  }

  function wordOf(tokenIndex) {
    return (model.get("words") || []).findIndex((w) => w.first <= tokenIndex && tokenIndex < w.last);
  }

  function chooseWord(index) {
    const words = model.get("words") || [];
    const bpeData = model.get("bpe") || {};
    if (index < 0 || index >= words.length) return;
    const word = words[index];
    const symbols = bpeData.symbols || {};
    state.word = index;
    const whole = bpeData.ignore_merges && symbols[word.piece] && symbols[word.piece][0] >= 0;
    // ignore_merges (Llama 3's BPE): a word that is in the vocabulary as a whole is taken as it is
    state.run = whole ? { states: [Array.from(word.piece), [word.piece]], applied: [["", "", -1]] } :
      bpe(Array.from(word.piece), ranks);
    state.step = 0;
    const rows = model.get("rows") || [];
    const expected = rows.length ? rows[0].ids.slice(word.first, word.last) : [];
    const got = state.run.states[state.run.states.length - 1].map((s) => (symbols[s] ? symbols[s][0] : -1));
    state.expected = expected;
    state.got = got;
    drawMerges();
  }

  function symbolText(symbol) {
    const info = (model.get("bpe").symbols || {})[symbol];
    return info ? info[1] : symbol;
  }

  function drawMerges() {
    const bpeData = model.get("bpe") || {};
    const words = model.get("words") || [];
    const note = model.get("note") || "";
    merges.replaceChildren();
    if (!words.length || !bpeData.merges) {
      if (note) merges.append(el("div", "aigc-bpe-note", note));
      return;
    }
    const word = words[state.word];
    const run = state.run;
    const last = run.states.length - 1;
    root.dataset.word = String(state.word);
    root.dataset.step = String(state.step);

    const title = el("div", "aigc-bpe-title");
    title.append(el("strong", "", "BPE builds a word from its bytes"),
      el("span", "", ` with ${model.get("model_name")}'s own merge list (${bpeData.total.toLocaleString("en-US")} ` +
        "merges; a lower rank merges first). Click a word, or a token above."));
    const chips = el("div", "aigc-bpe-words");
    const seen = new Set();
    words.forEach((w, i) => {
      if (seen.has(w.piece) || Array.from(w.piece).length < 2) return;
      seen.add(w.piece);
      const chip = el("button", "aigc-bpe-word", visible(w.text));
      chip.dataset.word = String(i);
      if (w.piece === word.piece) chip.classList.add("aigc-bpe-chosen");
      chips.append(chip);
    });

    const controls = el("div", "aigc-bpe-controls");
    const back = el("button", "aigc-bpe-back", "◀");
    back.title = "one merge back";
    const forward = el("button", "aigc-bpe-next", "▶");
    forward.title = "the next merge";
    const slider = el("input");
    Object.assign(slider, { type: "range", min: 0, max: last, step: 1 });
    slider.value = String(state.step);
    slider.dataset.control = "step";
    back.disabled = state.step === 0;
    forward.disabled = state.step === last;
    controls.append(back, forward, slider, el("span", "aigc-bpe-count", `step ${state.step} of ${last}`));

    const now = el("div", "aigc-bpe-now");
    if (state.step === 0) {
      now.append(el("span", "", `${visible(word.text)}: ${plural(run.states[0].length, "byte")}, each a symbol ` +
        "of the base vocabulary"));
    } else {
      const [left, right, rank] = run.applied[state.step - 1];
      if (rank < 0) now.append(el("span", "", "the whole word is in the vocabulary: no merges needed"));
      else now.append(el("span", "", `merge #${rank.toLocaleString("en-US")}: `), el("code", "aigc-bpe-sym", visible(symbolText(left))),
        el("span", "", " + "), el("code", "aigc-bpe-sym", visible(symbolText(right))), el("span", "", " → "),
        el("code", "aigc-bpe-sym aigc-bpe-new", visible(symbolText(left + right))));
    }
    const symbols = el("div", "aigc-bpe-state");
    const current = run.states[state.step];
    symbols.dataset.tokens = JSON.stringify(current);
    const made = state.step ? run.applied[state.step - 1][0] + run.applied[state.step - 1][1] : null;
    current.forEach((s, i) => {
      const info = (bpeData.symbols || {})[s];
      const box = tokenBox(symbolText(s), info ? info[0] : "?", undefined, i, false);
      if (s === made) box.classList.add("aigc-bpe-made");
      symbols.append(box);
    });

    const list = el("ol", "aigc-bpe-steps");
    list.start = 0;
    run.states.forEach((st, k) => {
      const item = el("li", "aigc-bpe-step");
      item.dataset.step = String(k);
      if (k === state.step) item.classList.add("aigc-bpe-current");
      const text = k === 0 ? "bytes: " : run.applied[k - 1][2] < 0 ? "whole: " : `#${run.applied[k - 1][2]}: `;
      item.append(el("span", "aigc-bpe-rank", text), el("span", "aigc-bpe-symbols", st.map((s) => visible(symbolText(s))).join(" · ")));
      list.append(item);
    });

    const result = el("div", "aigc-bpe-result");
    const match = JSON.stringify(state.got) === JSON.stringify(state.expected);
    result.dataset.ids = JSON.stringify(state.got);
    result.dataset.match = String(match);
    result.textContent = state.step < last ? `… ${plural(last - state.step, "merge")} to go` :
      `ids ${JSON.stringify(state.got)} ${match ? "= tokenizer.encode ✓" : `≠ tokenizer.encode ${JSON.stringify(state.expected)}`}`;
    merges.append(title, chips, controls, now, symbols, result, list);
  }

  function step(to) {
    if (!state.run) return;
    state.step = Math.max(0, Math.min(state.run.states.length - 1, to));
    drawMerges();
  }

  on(merges, "click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const chip = target.closest(".aigc-bpe-word");
    if (chip) return chooseWord(Number(chip.dataset.word));
    if (target.closest(".aigc-bpe-back")) return step(state.step - 1);
    if (target.closest(".aigc-bpe-next")) return step(state.step + 1);
    const item = target.closest(".aigc-bpe-step");
    if (item) step(Number(item.dataset.step));
  });
  on(merges, "input", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.dataset.control === "step") step(Number(event.target.value));
  });
  on(rowsBox, "click", (event) => {
    const box = event.target instanceof Element ? event.target.closest(".aigc-tok") : null;
    if (!box || box.closest(".aigc-tokens-strip").dataset.row !== "0") return;
    const index = wordOf(Number(box.dataset.index));
    if (index >= 0 && (model.get("bpe") || {}).merges) chooseWord(index);
  });
  on(showBytes, "change", drawRows);

  function load() {
    ranks = rankTable((model.get("bpe") || {}).merges || []);
    drawRows();
    if ((model.get("bpe") || {}).merges && (model.get("words") || []).length) chooseWord(Math.max(0, model.get("word")));
    else drawMerges();
  }
  const handlers = ["change:rows", "change:bpe", "change:words", "change:word", "change:note"];
  for (const name of handlers) model.on(name, load);
  load();

  return () => {
    for (const name of handlers) model.off(name, load);
    listeners.abort();
    unframe();
  };
}

export default { render };
