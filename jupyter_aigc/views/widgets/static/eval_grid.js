// Front end of EvalGrid (%%aigc_eval): progress, summary per metric and variant, the grid of answers with
// score badges, sorting, filters and a detail panel. Every text from the data or a model (fields, prompts,
// outputs, errors, reasons, titles, metric names) goes in with textContent: nothing of it is parsed as HTML.
// A "partial" cell (stopped or cut off) is marked, and left out of the means unless the run counts it.
// Human review: every answer can be rated pass/fail, 1–5 and with a note, from the keyboard (j/k or arrows to
// move, 1–5, p, f, n for a note); in blind mode each row's columns are shuffled and names and scores hidden
// until Reveal. Score ranges (for colours and pass filters) come from the kernel (`ranges`).

const Z95 = 1.959964;
const LOWER_IS_BETTER = new Set(["latency", "cost"]);
const NAV = { j: [1, 0], ArrowDown: [1, 0], k: [-1, 0], ArrowUp: [-1, 0], ArrowLeft: [0, -1], h: [0, -1], ArrowRight: [0, 1], l: [0, 1] };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function fmt(value) {
  if (value === null || value === undefined || (typeof value === "number" && Number.isNaN(value))) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(3)));
}

function eta(seconds) {
  if (!isNumber(seconds)) return "";
  if (seconds < 90) return `about ${Math.max(1, Math.round(seconds))} s left`;
  if (seconds < 5400) return `about ${Math.round(seconds / 60)} min left`;
  return `about ${(seconds / 3600).toFixed(1)} h left`;
}

function score(row, variant, metric) {
  const value = row?.cells?.[variant]?.scores?.[metric];
  return isNumber(value) ? value : null;
}

function render({ model, el: root }) {
  root.classList.add("aigc-eval");
  const listeners = new AbortController();
  const on = (node, type, handler) => node.addEventListener(type, handler, { signal: listeners.signal });

  // what the user chose: kept across every redraw
  const state = { sort: null, metric: null, a: 0, b: 1, aFailsBPasses: false, disagree: false, search: "", detail: null,
    revealed: false, visible: [] };
  const local = new Map(); // "row:variant" -> a rating sent to the kernel and not yet back in `rows`
  const blindNow = () => !!model.get("blind") && !state.revealed;

  // header bar
  const head = el("div", "aigc-eval-head");
  const bar = el("div", "aigc-eval-progress");
  const fill = el("div", "aigc-eval-progress-fill");
  bar.append(fill);
  const count = el("span", "aigc-eval-count");
  const reused = el("span", "aigc-eval-reused");
  const left = el("span", "aigc-eval-eta");
  const note = el("span", "aigc-eval-note");
  const rated = el("span", "aigc-eval-rated");
  const reveal = el("button", "aigc-eval-reveal", "Reveal names");
  reveal.title = "Blind review: show the variants' names and scores";
  const stop = el("button", "aigc-eval-stop", "■ Stop");
  stop.title = "Stop asking: the answers so far are kept and scored";
  head.append(bar, count, reused, left, note, rated, reveal, stop);

  // summary, and how far each metric agrees with people's ratings
  const summary = el("table", "aigc-eval-summary");
  let agreement = agreementTable({}, []);

  // filter bar
  const filters = el("div", "aigc-eval-filters");
  const metricSelect = el("select", "aigc-eval-metric");
  const aSelect = el("select", "aigc-eval-a");
  const bSelect = el("select", "aigc-eval-b");
  const failPass = el("input", "aigc-eval-failpass");
  failPass.type = "checkbox";
  const disagree = el("input", "aigc-eval-disagree");
  disagree.type = "checkbox";
  const search = el("input", "aigc-eval-search");
  search.type = "search";
  search.placeholder = "search text";
  const shown = el("span", "aigc-eval-shown");
  const labelled = (text, control, cls) => {
    const label = el("label", cls);
    label.append(el("span", "", text), control);
    return label;
  };
  const checkLabel = (control, text, cls) => {
    const label = el("label", cls);
    label.append(control, el("span", "", text));
    return label;
  };
  const pairControls = [labelled("A", aSelect, "aigc-eval-pair"), labelled("B", bSelect, "aigc-eval-pair"),
    checkLabel(failPass, "A fails and B passes", "aigc-eval-pair"),
    checkLabel(disagree, "variants disagree", "aigc-eval-pair")];
  filters.append(labelled("metric", metricSelect), ...pairControls, search, shown);

  // grid
  const scroller = el("div", "aigc-eval-scroll");
  const grid = el("table", "aigc-eval-grid");
  const gridHead = el("thead");
  const gridBody = el("tbody");
  grid.append(gridHead, gridBody);
  scroller.append(grid);
  const empty = el("div", "aigc-eval-empty", "No row matches the filters.");

  // detail
  const detail = el("div", "aigc-eval-detail");
  detail.hidden = true;

  scroller.dataset.lmSuppressShortcuts = "true"; // j, k, 1–5, p, f rate here: not JupyterLab's shortcuts
  root.append(head, summary, agreement, filters, scroller, empty, detail);

  const rowCache = new Map(); // row index -> {key, tr}
  let lastTitles = "";
  let lastMetrics = "";
  let lastContext = "";
  let detailKey = "";

  const titles = () => model.get("titles") || [];
  const metrics = () => model.get("metrics") || [];
  const rows = () => model.get("rows") || [];

  function rangeOf(metric) {
    return (model.get("ranges") || {})[metric] || null;
  }

  // ---- ratings: what the kernel has, or what was just given and is on its way
  function ratingOf(rowIndex, variant) {
    const key = `${rowIndex}:${variant}`;
    return local.has(key) ? local.get(key) : rows()[rowIndex]?.cells?.[variant]?.rating || null;
  }

  function variantAt(rowIndex, position) {
    const order = blindNow() ? (model.get("order") || [])[rowIndex] : null;
    return order ? order[position] : position;
  }

  function rate(rowIndex, variant, change) {
    const cell = rows()[rowIndex]?.cells?.[variant];
    if (!cell || (cell.status !== "done")) return;
    const current = { ...EMPTY_RATING, ...(ratingOf(rowIndex, variant) || {}) };
    const next = { ...current, ...change };
    for (const part of ["pass", "score"]) if (part in change && change[part] === current[part]) next[part] = null;
    local.set(`${rowIndex}:${variant}`, next);
    model.send({ type: "rate", row: rowIndex, variant, rating: next });
    drawGrid();
    drawDetail();
    drawRated();
  }

  function drawRated() {
    let done = 0;
    let total = 0;
    rows().forEach((row, index) => (row.cells || []).forEach((cell, variant) => {
      if (cell?.status !== "done") return;
      total += 1;
      const r = ratingOf(index, variant);
      if (r && (r.pass !== null || r.score !== null)) done += 1;
    }));
    rated.textContent = total ? `${done} / ${total} rated` : "";
    rated.dataset.rated = done;
    rated.title = "answers rated by you: click ✓ ✗ 1–5 in a cell, or focus one and press p, f, 1–5 (j/k move, n for a note)";
    reveal.style.display = model.get("blind") ? "" : "none";
    reveal.textContent = state.revealed ? "Hide names" : "Reveal names";
    root.classList.toggle("aigc-eval-blind", blindNow());
  }

  function normalised(metric, value, range = rangeOf(metric)) {
    if (!isNumber(value)) return null;
    if (!range) return value;
    return Math.min(1, Math.max(0, (value - range[0]) / (range[1] - range[0])));
  }

  function passes(metric, value, range) {
    const n = normalised(metric, value, range);
    return n === null ? null : n >= 0.5;
  }

  // ---- header bar
  function drawProgress() {
    const p = model.get("progress") || {};
    const running = model.get("running");
    const done = p.done ?? 0;
    const total = p.total ?? 0;
    fill.style.width = `${total ? (100 * done) / total : 0}%`;
    bar.dataset.done = done;
    bar.dataset.total = total;
    count.textContent = `${done} / ${total}`;
    reused.textContent = p.reused ? `${p.reused} reused` : "";
    reused.title = p.reused ? "answers reused from earlier runs (same model, prompt and settings)" : "";
    left.textContent = running ? eta(p.eta_s) : "";
    if (p.stopped) note.textContent = "stopped: finished rows kept";
    else if (running && stop.dataset.clicked) note.textContent = "stopping…";
    else if (!running && total && done === total) note.textContent = "done";
    else note.textContent = "";
    root.classList.toggle("aigc-eval-running", !!running);
    root.classList.toggle("aigc-eval-stopped", !!p.stopped);
    stop.disabled = !running || !!stop.dataset.clicked;
    if (!running) delete stop.dataset.clicked;
  }

  // ---- summary
  function liveStats(metric) {
    // while the run goes on the kernel's summary is not there yet: the same numbers from the rows so far
    const counted = (model.get("progress") || {}).include_partial;
    return titles().map((_, variant) => {
      const scored = rows().filter((row) => score(row, variant, metric) !== null);
      const kept = scored.filter((row) => counted || !row.cells?.[variant]?.partial);
      const values = kept.map((row) => score(row, variant, metric));
      const n = values.length;
      const partial = scored.length - n;
      if (!n) return { mean: null, ci95: null, n: 0, partial };
      const mean = values.reduce((s, v) => s + v, 0) / n;
      const sd = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : 0;
      return { mean, ci95: (Z95 * sd) / Math.sqrt(n), n, partial };
    });
  }

  function drawSummary() {
    const data = model.get("summary") || {};
    summary.replaceChildren();
    const fresh = agreementTable(blindNow() ? {} : model.get("agreement") || {}, metrics());
    agreement.replaceWith(fresh);
    agreement = fresh;
    if (!metrics().length || blindNow()) return;
    const top = el("tr");
    top.append(el("th", "aigc-eval-corner", "metric"));
    for (const title of titles()) top.append(el("th", "aigc-eval-variant", title));
    const thead = el("thead");
    thead.append(top);
    const tbody = el("tbody");
    for (const metric of metrics()) {
      const entry = data[metric];
      const provisional = !entry;
      const stats = entry ? entry.variants || [] : liveStats(metric);
      const higher = entry ? entry.higher_is_better : LOWER_IS_BETTER.has(metric) ? false : true;
      const tr = el("tr");
      tr.dataset.metric = metric;
      const name = el("th", "aigc-eval-metric-name", metric);
      if (higher === true || higher === false) {
        const arrow = el("span", "aigc-eval-dir", higher ? " ↑" : " ↓");
        arrow.title = higher ? "higher is better" : "lower is better";
        name.append(arrow);
      }
      tr.append(name);
      titles().forEach((_, variant) => {
        const s = stats[variant] || { mean: null, ci95: null, n: 0 };
        const td = el("td", "aigc-eval-stat");
        td.dataset.metric = metric;
        td.dataset.variant = variant;
        td.dataset.mean = s.mean ?? "";
        const best = !provisional && entry.best === variant;
        if (best) {
          td.classList.add("aigc-eval-best");
          td.append(el("span", "aigc-eval-star", "★ "));
        }
        td.append(el("span", "aigc-eval-mean", fmt(s.mean)));
        if (isNumber(s.mean)) td.append(el("span", "aigc-eval-ci", ` ± ${fmt(s.ci95)}`));
        td.append(el("span", "aigc-eval-n", ` (${s.n ?? 0})`));
        if (s.partial) {
          const left = el("span", "aigc-eval-n aigc-eval-partial-count", `, ${s.partial} partial left out`);
          left.title = "stopped or cut-off answers are not in the mean (--include-partial counts them)";
          td.append(left);
        }
        if (provisional) td.classList.add("aigc-eval-provisional");
        if (state.sort && state.sort.metric === metric && state.sort.variant === variant) {
          td.classList.add("aigc-eval-sorted");
          td.dataset.dir = state.sort.dir;
        }
        td.title = `sort the rows by ${titles()[variant]}'s ${metric}` + (provisional ? " (so far)" : "");
        tr.append(td);
      });
      tbody.append(tr);
    }
    summary.append(thead, tbody);
  }

  // ---- filter bar
  function fillSelect(select, options, value) {
    select.replaceChildren();
    options.forEach(([val, text]) => {
      const option = el("option", "", text);
      option.value = String(val);
      select.append(option);
    });
    select.value = String(value);
  }

  function drawFilterControls() {
    const t = titles();
    const m = metrics();
    const tKey = JSON.stringify(t);
    const mKey = JSON.stringify(m);
    if (mKey !== lastMetrics) {
      lastMetrics = mKey;
      if (!m.includes(state.metric)) state.metric = m[0] ?? null;
      fillSelect(metricSelect, m.map((name) => [name, name]), state.metric ?? "");
      if (state.sort && !m.includes(state.sort.metric)) state.sort = null;
    }
    if (tKey !== lastTitles) {
      lastTitles = tKey;
      if (t.length) {
        if (state.a >= t.length) state.a = 0;
        if (state.b >= t.length || (state.b === state.a && t.length > 1)) state.b = state.a === 0 ? 1 : 0;
      }
      const options = t.map((title, i) => [i, title]);
      fillSelect(aSelect, options, state.a);
      fillSelect(bSelect, options, state.b);
      if (state.sort && state.sort.variant >= t.length) state.sort = null;
    }
    for (const label of pairControls) label.style.display = t.length > 1 && !blindNow() ? "" : "none";
    metricSelect.parentNode.style.display = blindNow() ? "none" : "";
    metricSelect.value = state.metric ?? "";
    failPass.checked = state.aFailsBPasses;
    disagree.checked = state.disagree;
  }

  // ---- grid
  function drawGridHead() {
    const key = JSON.stringify([titles(), state.sort, blindNow()]);
    if (gridHead._aigcKey === key) return;
    gridHead._aigcKey = key;
    const tr = el("tr");
    const example = el("th", "aigc-eval-example-head", "example");
    example.title = "back to the data's order";
    example.dataset.reset = "1";
    tr.append(example);
    titles().forEach((title, variant) => {
      const th = el("th", "aigc-eval-variant-head");
      if (blindNow()) {
        th.append(el("span", "aigc-eval-title", `answer ${variant + 1}`));
        th.title = "blind review: each row's answers are shuffled and their names hidden until Reveal names";
        tr.append(th);
        return;
      }
      th.dataset.variant = variant;
      th.append(el("span", "aigc-eval-title", title));
      const arrow = el("span", "aigc-eval-arrow");
      if (state.sort && state.sort.variant === variant) {
        th.classList.add("aigc-eval-sorted");
        th.dataset.dir = state.sort.dir;
        arrow.textContent = ` ${state.sort.dir === "desc" ? "▼" : "▲"} ${state.sort.metric}`;
      }
      th.append(arrow);
      th.title = "sort by this variant's score for the chosen metric";
      tr.append(th);
    });
    gridHead.replaceChildren(tr);
    const cols = grid.querySelector("colgroup") || el("colgroup");
    cols.replaceChildren(el("col", "aigc-eval-col-example"), ...titles().map(() => el("col", "aigc-eval-col-variant")));
    if (!cols.parentNode) grid.prepend(cols);
  }

  function badge(metric, value, range) {
    const span = el("span", "aigc-eval-badge");
    span.dataset.metric = metric;
    span.dataset.value = isNumber(value) ? String(value) : "";
    span.append(el("span", "aigc-eval-badge-name", metric), el("span", "aigc-eval-badge-value", fmt(value)));
    if (isNumber(value) && range) {
      span.dataset.scale = "range";
      span.style.setProperty("--aigc-hue", String(Math.round(120 * normalised(metric, value, range))));
    } else {
      span.dataset.scale = isNumber(value) ? "neutral" : "none";
    }
    span.title = `${metric}: ${isNumber(value) ? value : "no score"}`;
    return span;
  }

  // --task choice: every choice with its log-probability; ▶ the pick (acc), n the pick per character
  // (acc_norm), ✓ the gold choice
  function choiceList(choice, full = false) {
    const list = el(full ? "table" : "div", "aigc-eval-choices");
    (choice.choices || []).forEach((text, index) => {
      const logprob = choice.logprobs?.[index];
      const marks = (index === choice.pick ? "▶" : "") + (index === choice.pick_norm ? "n" : "")
        + (index === choice.gold ? "✓" : "");
      const value = isNumber(logprob) ? (full ? String(Number(logprob.toPrecision(6))) : fmt(logprob)) : "–";
      const line = el(full ? "tr" : "div", "aigc-eval-choice");
      line.dataset.choice = index;
      if (index === choice.pick) line.dataset.picked = "1";
      if (index === choice.pick_norm) line.dataset.pickedNorm = "1";
      if (index === choice.gold) line.dataset.gold = "1";
      if (index === choice.gold) line.style.fontWeight = "bold";
      if (index === choice.pick && index !== choice.gold) line.style.color = "var(--jp-error-color1, #c62828)";
      const parts = [el(full ? "td" : "span", "aigc-eval-choice-mark", marks.padEnd(2, " ")),
        el(full ? "td" : "span", "aigc-eval-choice-text", full ? text : `${text}: `),
        el(full ? "td" : "span", "aigc-eval-choice-logprob", value)];
      line.append(...parts);
      line.title = `${text}\nlog-probability ${isNumber(logprob) ? logprob : "–"}`
        + (index === choice.pick ? "\npicked (highest log-probability)" : "")
        + (index === choice.pick_norm ? "\npicked per character (acc_norm)" : "")
        + (index === choice.gold ? "\nthe gold answer" : "");
      list.append(line);
    });
    return list;
  }

  function buildRow(row, index, ranges) {
    const tr = el("tr");
    tr.dataset.row = index;
    const fieldsCell = el("td", "aigc-eval-fields");
    const names = (model.get("fields") || []).slice(0, 3);
    for (const name of names) {
      const line = el("div", "aigc-eval-field");
      const value = row.fields?.[name] ?? "";
      line.append(el("span", "aigc-eval-field-name", `${name}: `), el("span", "aigc-eval-field-value", value));
      line.title = `${name}: ${value}`;
      line.dataset.field = name;
      fieldsCell.append(line);
    }
    const extra = (model.get("fields") || []).length - names.length;
    if (extra > 0) fieldsCell.append(el("div", "aigc-eval-more", `+${extra} more (click an answer)`));
    tr.append(fieldsCell);
    titles().forEach((_, position) => {
      const variant = variantAt(index, position);
      const cell = row.cells?.[variant] || { status: "waiting" };
      const td = el("td", "aigc-eval-cell");
      td.dataset.variant = variant;
      td.dataset.position = position;
      td.dataset.row = index;
      td.dataset.status = cell.status || "waiting";
      td.tabIndex = 0;
      if ((cell.status === "waiting" || !cell.status) && !model.get("running")) {
        td.dataset.status = "not-run";
        td.append(el("div", "aigc-eval-notrun", "not run"));
      } else if (cell.status === "waiting" || !cell.status) {
        const wait = el("div", "aigc-eval-waiting");
        wait.append(el("span", "aigc-eval-spinner"), el("span", "", "…"));
        td.append(wait);
      } else {
        if (cell.status === "error") td.append(el("div", "aigc-eval-error", cell.error || "failed"));
        if (cell.partial) {
          td.dataset.partial = "1";
          const counted = (model.get("progress") || {}).include_partial;
          const mark = el("div", "aigc-eval-partial", `partial: ${cell.finish === "stopped" ? "stopped" : "cut off"}`
            + (counted ? "" : ", not in the means"));
          mark.style.color = "var(--jp-warn-color0, #b35900)";
          mark.style.fontStyle = "italic";
          mark.title = cell.error || "the answer did not end on its own";
          td.append(mark);
        }
        if (cell.output || cell.status !== "error") {
          const output = el("div", "aigc-eval-output", cell.output || "");
          if (!cell.output) output.classList.add("aigc-eval-blank");
          if (!cell.output) output.textContent = "(empty answer)";
          td.append(output);
        }
        if (cell.choice) td.append(choiceList(cell.choice));
        if (cell.checks && !blindNow()) td.append(checksList(cell.checks));
        const rating = ratingOf(index, variant);
        if (cell.status === "done" && !cell.choice) { // people review generated answers, not choice picks
          td.append(reviewBar(rating));
          td.dataset.pass = rating?.pass === true ? "1" : rating?.pass === false ? "0" : "";
          td.dataset.score = rating?.score ?? "";
        }
        const badges = el("div", "aigc-eval-badges");
        const shown = blindNow() ? [] : metrics().filter((m) => m !== "human" && m !== "human_pass");
        for (const metric of shown) badges.append(badge(metric, cell.scores?.[metric], ranges[metric]));
        if (cell.reused && !blindNow()) {
          const mark = el("span", "aigc-eval-reused-mark", "↺");
          mark.title = "reused from an earlier run";
          badges.append(mark);
        }
        td.append(badges);
      }
      if (state.detail && state.detail.row === index && state.detail.variant === variant) td.classList.add("aigc-eval-selected");
      tr.append(td);
    });
    return tr;
  }

  function matches(row, ranges) {
    const metric = state.metric;
    if (metric && titles().length > 1) {
      if (state.aFailsBPasses) {
        const a = passes(metric, score(row, state.a, metric), ranges[metric]);
        const b = passes(metric, score(row, state.b, metric), ranges[metric]);
        if (!(a === false && b === true)) return false;
      }
      if (state.disagree) {
        const verdicts = titles().map((_, v) => passes(metric, score(row, v, metric), ranges[metric]))
          .filter((v) => v !== null);
        if (new Set(verdicts).size < 2) return false;
      }
    }
    if (state.search) {
      const needle = state.search.toLowerCase();
      const texts = [...Object.values(row.fields || {}), ...(row.cells || []).map((c) => c?.output || "")];
      if (!texts.some((t) => String(t).toLowerCase().includes(needle))) return false;
    }
    return true;
  }

  function drawGrid() {
    drawGridHead();
    const data = rows();
    const ranges = Object.fromEntries(metrics().map((m) => [m, rangeOf(m)]));
    const context = JSON.stringify([titles(), metrics(), model.get("fields"), ranges, state.detail, model.get("running"),
      blindNow()]);
    if (context !== lastContext) {
      lastContext = context;
      rowCache.clear();
    }
    for (const index of [...rowCache.keys()]) if (index >= data.length) rowCache.delete(index);
    let order = data.map((row, index) => index);
    if (state.sort) {
      const { variant, metric, dir } = state.sort;
      const sign = dir === "desc" ? -1 : 1;
      order.sort((i, j) => {
        const x = score(data[i], variant, metric);
        const y = score(data[j], variant, metric);
        if (x === null && y === null) return i - j;
        if (x === null) return 1;
        if (y === null) return -1;
        return x === y ? i - j : sign * (x - y);
      });
    }
    order = order.filter((index) => matches(data[index], ranges));
    const active = document.activeElement?.closest?.(".aigc-eval-cell");
    const focused = active && gridBody.contains(active) ? [active.dataset.row, active.dataset.variant] : null;
    const trs = order.map((index) => {
      const row = data[index];
      const key = JSON.stringify([row, (row.cells || []).map((_, v) => local.get(`${index}:${v}`) || null)]);
      let cached = rowCache.get(index);
      if (!cached || cached.key !== key) {
        cached = { key, tr: buildRow(row, index, ranges) };
        rowCache.set(index, cached);
      }
      return cached.tr;
    });
    gridBody.replaceChildren(...trs);
    state.visible = order;
    if (focused && !gridBody.contains(document.activeElement)) {
      gridBody.querySelector(`.aigc-eval-cell[data-row="${focused[0]}"][data-variant="${focused[1]}"]`)?.focus({ preventScroll: true });
    }
    shown.textContent = `${order.length} of ${data.length} rows`;
    shown.dataset.shown = order.length;
    shown.dataset.total = data.length;
    empty.style.display = data.length && !order.length ? "block" : "none";
  }

  // ---- detail
  function section(title, body) {
    const box = el("div", "aigc-eval-section");
    box.append(el("div", "aigc-eval-section-title", title), body);
    return box;
  }

  function drawDetail() {
    const target = state.detail;
    const row = target ? rows()[target.row] : null;
    if (!row || target.variant >= titles().length) {
      state.detail = null;
      detail.hidden = true;
      detail.replaceChildren();
      detailKey = "";
      return;
    }
    const cell = row.cells?.[target.variant] || { status: "waiting" };
    const rating = ratingOf(target.row, target.variant);
    const key = JSON.stringify([target, row, rating, titles()[target.variant], metrics(), model.get("running"), blindNow()]);
    detail.hidden = false;
    if (key === detailKey) return; // unchanged: keep the selection and the scroll
    const typing = document.activeElement?.classList?.contains("aigc-eval-note-input") && detail.contains(document.activeElement);
    if (typing && detail.dataset.target === JSON.stringify(target)) return; // never under the reviewer's typing
    detailKey = key;
    detail.dataset.target = JSON.stringify(target);
    const blind = blindNow();
    const name = blind ? `answer ${(model.get("order")?.[target.row] || []).indexOf(target.variant) + 1}` : titles()[target.variant];
    const top = el("div", "aigc-eval-detail-head");
    top.append(el("span", "aigc-eval-detail-title", `example ${target.row + 1} · ${name}`));
    const close = el("button", "aigc-eval-close", "×");
    close.title = "close";
    close.dataset.close = "1";
    top.append(close);

    const fieldList = el("div", "aigc-eval-detail-fields");
    const names = [...(model.get("fields") || [])];
    for (const name of Object.keys(row.fields || {})) if (!names.includes(name)) names.push(name);
    for (const name of names) {
      const value = el("div", "aigc-eval-detail-value", row.fields?.[name] ?? "");
      value.dataset.field = name;
      fieldList.append(el("div", "aigc-eval-detail-name", name), value);
    }
    const parts = [top, section("data", fieldList)];
    parts.push(section("prompt", el("pre", "aigc-eval-prompt", cell.prompt || "")));
    if (cell.status === "waiting") {
      const text = model.get("running") ? "waiting for the answer…" : "not run (the run was stopped)";
      parts.push(section("output", el("div", "aigc-eval-waiting", text)));
    } else {
      const output = el("pre", "aigc-eval-full-output", cell.output || "");
      parts.push(section(cell.choice ? "picked" : "output", output));
      if (cell.choice) parts.push(section("choices (▶ picked · n per character · ✓ gold)", choiceList(cell.choice, true)));
      if (cell.error) parts.push(section("error", el("pre", "aigc-eval-error", cell.error)));
      if (cell.status === "done" && !cell.choice) {
        const box = el("div", "aigc-eval-review-box");
        const noteBox = el("textarea", "aigc-eval-note-input");
        noteBox.value = rating?.note || "";
        noteBox.rows = 2;
        noteBox.placeholder = "a note on this answer (kept when you leave the box; Esc goes back to the grid)";
        noteBox.dataset.row = target.row;
        noteBox.dataset.variant = target.variant;
        box.append(reviewBar(rating), noteBox);
        box.dataset.row = target.row;
        box.dataset.variant = target.variant;
        parts.push(section("your review", box));
      }
      if (blind) {
        parts.push(el("div", "aigc-eval-meta", "blind review: scores and names are hidden until Reveal names"));
        detail.replaceChildren(...parts);
        return;
      }
      if (cell.checks) parts.push(section("assertions", checksList(cell.checks, true)));
      const scores = el("table", "aigc-eval-detail-scores");
      for (const metric of metrics()) {
        const tr = el("tr");
        const value = cell.scores?.[metric];
        const td = el("td", "", isNumber(value) ? String(Number(value.toPrecision(6))) : "–");
        td.dataset.metric = metric;
        tr.append(el("th", "", metric), td);
        scores.append(tr);
      }
      parts.push(section("scores", scores));
      if (cell.reason) parts.push(section(cell.checks ? "reason" : "judge's reason", el("div", "aigc-eval-reason", cell.reason)));
      const meta = [`finish: ${cell.finish || "–"}`];
      if (cell.partial) meta.push((model.get("progress") || {}).include_partial ? "partial, counted in the means"
        : "partial: not in the means");
      if (isNumber(cell.elapsed)) meta.push(`${cell.elapsed.toFixed(2)} s`);
      meta.push(cell.reused ? "reused from an earlier run" : "asked in this run");
      parts.push(el("div", "aigc-eval-meta", meta.join(" · ")));
    }
    detail.replaceChildren(...parts);
  }

  function openDetail(rowIndex, variant) {
    state.detail = { row: rowIndex, variant };
    detailKey = "";
    drawGrid();
    drawDetail();
    detail.scrollIntoView?.({ block: "nearest" });
  }

  // move the focus from a cell by rows (among those shown, in their order) and columns
  function move(td, rows_, columns) {
    const at = state.visible.indexOf(Number(td.dataset.row));
    const rowIndex = state.visible[Math.min(state.visible.length - 1, Math.max(0, at + rows_))];
    const position = Math.min(titles().length - 1, Math.max(0, Number(td.dataset.position) + columns));
    const next = gridBody.querySelector(`.aigc-eval-cell[data-row="${rowIndex}"][data-position="${position}"]`);
    if (!next) return;
    next.focus();
    if (state.detail) openDetail(rowIndex, Number(next.dataset.variant));
  }

  function closeDetail() {
    state.detail = null;
    drawGrid();
    drawDetail();
  }

  // ---- interaction
  function sortBy(variant, metric) {
    if (!metric) return;
    const same = state.sort && state.sort.variant === variant && state.sort.metric === metric;
    state.sort = { variant, metric, dir: same && state.sort.dir === "desc" ? "asc" : "desc" };
    state.metric = metric;
    metricSelect.value = metric;
    drawSummary();
    drawGrid();
  }

  on(root, "click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest(".aigc-eval-close")) return closeDetail();
    const rateButton = target.closest("[data-rate]");
    const rated_ = rateButton?.closest(".aigc-eval-cell, .aigc-eval-review-box");
    if (rateButton && rated_) {
      const kind = rateButton.dataset.rate;
      const change = kind === "score" ? { score: Number(rateButton.dataset.value) } : { pass: kind === "pass" };
      return rate(Number(rated_.dataset.row), Number(rated_.dataset.variant), change);
    }
    const stat = target.closest(".aigc-eval-stat");
    if (stat && summary.contains(stat)) return sortBy(Number(stat.dataset.variant), stat.dataset.metric);
    const headCell = target.closest("th");
    if (headCell && gridHead.contains(headCell)) {
      if (headCell.dataset.reset) {
        state.sort = null;
        drawSummary();
        drawGrid();
      } else if (headCell.dataset.variant !== undefined) {
        sortBy(Number(headCell.dataset.variant), state.metric);
      }
      return;
    }
    const cell = target.closest(".aigc-eval-cell");
    if (cell && gridBody.contains(cell)) openDetail(Number(cell.dataset.row), Number(cell.dataset.variant));
  });
  on(root, "keydown", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (target?.classList.contains("aigc-eval-note-input")) {
      if (event.key === "Escape") {
        event.preventDefault();
        target.blur();
        gridBody.querySelector(`.aigc-eval-cell[data-row="${target.dataset.row}"][data-variant="${target.dataset.variant}"]`)?.focus();
      }
      return; // typing a note: no key rates or moves
    }
    const cell = target ? target.closest(".aigc-eval-cell") : null;
    if (cell && !(event.ctrlKey || event.metaKey || event.altKey)) {
      const row = Number(cell.dataset.row);
      const variant = Number(cell.dataset.variant);
      const rateable = cell.dataset.status === "done";
      let handled = true;
      if (event.key === "Enter" || event.key === " ") openDetail(row, variant);
      else if (NAV[event.key]) move(cell, ...NAV[event.key]);
      else if (rateable && /^[1-5]$/.test(event.key)) rate(row, variant, { score: Number(event.key) });
      else if (rateable && (event.key === "p" || event.key === "f")) rate(row, variant, { pass: event.key === "p" });
      else if (rateable && event.key === "n") {
        openDetail(row, variant);
        detail.querySelector(".aigc-eval-note-input")?.focus();
      } else handled = false;
      if (handled) {
        event.preventDefault();
        event.stopPropagation();
        return;
      }
    }
    if (event.key === "Escape" && state.detail) closeDetail();
  });
  on(root, "change", (event) => {
    const box = event.target instanceof Element && event.target.classList.contains("aigc-eval-note-input") ? event.target : null;
    if (box) rate(Number(box.dataset.row), Number(box.dataset.variant), { note: box.value });
  });
  on(reveal, "click", () => {
    state.revealed = !state.revealed;
    drawAll();
  });
  on(stop, "click", () => {
    if (!model.get("running")) return;
    stop.dataset.clicked = "1";
    model.send({ type: "stop" });
    drawProgress();
  });
  on(metricSelect, "change", () => {
    state.metric = metricSelect.value;
    drawGrid();
  });
  on(aSelect, "change", () => {
    state.a = Number(aSelect.value);
    drawGrid();
  });
  on(bSelect, "change", () => {
    state.b = Number(bSelect.value);
    drawGrid();
  });
  on(failPass, "change", () => {
    state.aFailsBPasses = failPass.checked;
    drawGrid();
  });
  on(disagree, "change", () => {
    state.disagree = disagree.checked;
    drawGrid();
  });
  on(search, "input", () => {
    state.search = search.value.trim();
    drawGrid();
  });

  function drawAll() {
    drawRated();
    drawProgress();
    drawFilterControls();
    drawSummary();
    drawGrid();
    drawDetail();
  }
  const onRows = () => {
    // a rating given here is back from the kernel: the kernel's copy is the one to show
    for (const [key, rating] of [...local]) {
      const [row, variant] = key.split(":").map(Number);
      if (JSON.stringify(rows()[row]?.cells?.[variant]?.rating || EMPTY_RATING) === JSON.stringify(rating)) local.delete(key);
    }
    drawRated();
    drawFilterControls();
    if (!Object.keys(model.get("summary") || {}).length) drawSummary();
    drawGrid();
    drawDetail();
  };
  const handlers = {
    "change:rows": onRows,
    "change:fields": onRows,
    "change:titles": drawAll,
    "change:metrics": drawAll,
    "change:summary": drawSummary,
    "change:agreement": drawSummary,
    "change:ranges": onRows,
    "change:blind": drawAll,
    "change:order": drawAll,
    "change:progress": drawProgress,
    "change:running": () => {
      drawProgress();
      drawGrid();
      drawDetail();
    },
  };
  for (const [name, handler] of Object.entries(handlers)) model.on(name, handler);
  // the kernel refused a rating: say why, and show what it holds
  const onMessage = (message) => {
    if (message?.type !== "rating-refused") return;
    local.delete(`${message.row}:${message.variant}`);
    note.textContent = message.text;
    drawGrid();
    drawDetail();
    drawRated();
  };
  model.on("msg:custom", onMessage);
  drawAll();

  return () => {
    for (const [name, handler] of Object.entries(handlers)) model.off(name, handler);
    model.off("msg:custom", onMessage);
    listeners.abort();
  };
}

export default { render };
