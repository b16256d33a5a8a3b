// Front end of EvalGrid (%%aigc_eval): progress, summary per metric and variant, the grid of answers with
// score badges, sorting, filters and a detail panel. Every text from the data or a model (fields, prompts,
// outputs, errors, reasons, titles, metric names) goes in with textContent: nothing of it is parsed as HTML.
// A "partial" cell (stopped or cut off) is marked, and left out of the means unless the run counts it.
// Human review: every answer can be rated pass/fail, 1–5 and with a note, from the keyboard (j/k or arrows to
// move, 1–5, p, f, n for a note); in blind mode each row's columns are shuffled and names and scores hidden
// until Reveal. Score ranges (for colours and pass filters) come from the kernel (`ranges`).
// Put after eval_review.js (review bar, agreement table, checks), eval_scores.js (summary table, sorting,
// filters) and eval_cells.js (the grid's cells and the detail), which use `el`, `fmt` and `isNumber` from here.

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
  const { filters, metricSelect, aSelect, bSelect, failPass, disagree, search, shown, pairControls } = filterBar();

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
  function drawSummary() {
    summary.replaceChildren();
    const fresh = agreementTable(blindNow() ? {} : model.get("agreement") || {}, metrics());
    agreement.replaceWith(fresh);
    agreement = fresh;
    if (!metrics().length || blindNow()) return;
    fillSummary(summary, { summary: model.get("summary") || {}, titles: titles(), metrics: metrics(), rows: rows(),
      countPartial: (model.get("progress") || {}).include_partial, sort: state.sort });
  }

  // ---- filter bar
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
    gridHead.replaceChildren(headRow(titles(), state.sort, blindNow()));
    const cols = grid.querySelector("colgroup") || el("colgroup");
    cols.replaceChildren(el("col", "aigc-eval-col-example"), ...titles().map(() => el("col", "aigc-eval-col-variant")));
    if (!cols.parentNode) grid.prepend(cols);
  }

  function buildRow(row, index, ranges) {
    const tr = el("tr");
    tr.dataset.row = index;
    tr.append(fieldsCell(row, model.get("fields") || []));
    const view = { running: model.get("running"), blind: blindNow(), metrics: metrics(), ranges,
      countPartial: (model.get("progress") || {}).include_partial };
    titles().forEach((_, position) => {
      const variant = variantAt(index, position);
      const cell = row.cells?.[variant] || { status: "waiting" };
      const selected = !!state.detail && state.detail.row === index && state.detail.variant === variant;
      tr.append(answerCell(cell, { row: index, variant, position }, view, ratingOf(index, variant), selected));
    });
    return tr;
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
    const order = sortedOrder(data, state.sort).filter((index) => matches(data[index], state, titles().length, ranges));
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
    const view = { fields: model.get("fields") || [], metrics: metrics(), running: model.get("running"), blind,
      countPartial: (model.get("progress") || {}).include_partial };
    detail.replaceChildren(top, ...detailParts(row, cell, target, view, rating));
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
