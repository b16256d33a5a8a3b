// Parts of EvalGrid's front end that work with the scores (put in front of eval_grid.js, whose `el`, `fmt` and
// `isNumber` they use): a score read from a row, its place in the metric's range and pass verdict, the summary
// table (mean ± 95% CI per metric and variant, computed here from the rows while the kernel's is not there
// yet), the rows' order when sorted by a score, and the filter bar with its test of a row. Metric names and
// titles go in with textContent.

const Z95 = 1.959964;
const LOWER_IS_BETTER = new Set(["latency", "cost"]);

function score(row, variant, metric) {
  const value = row?.cells?.[variant]?.scores?.[metric];
  return isNumber(value) ? value : null;
}

// where a score lies in its metric's range, 0 to 1 (the score itself when the metric has no range)
function normalised(value, range) {
  if (!isNumber(value)) return null;
  if (!range) return value;
  return Math.min(1, Math.max(0, (value - range[0]) / (range[1] - range[0])));
}

function passes(value, range) {
  const n = normalised(value, range);
  return n === null ? null : n >= 0.5;
}

// while the run goes on the kernel's summary is not there yet: the same numbers from the rows so far
function liveStats(titles, rows, metric, countPartial) {
  return titles.map((_, variant) => {
    const scored = rows.filter((row) => score(row, variant, metric) !== null);
    const kept = scored.filter((row) => countPartial || !row.cells?.[variant]?.partial);
    const values = kept.map((row) => score(row, variant, metric));
    const n = values.length;
    const partial = scored.length - n;
    if (!n) return { mean: null, ci95: null, n: 0, partial };
    const mean = values.reduce((s, v) => s + v, 0) / n;
    const sd = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : 0;
    return { mean, ci95: (Z95 * sd) / Math.sqrt(n), n, partial };
  });
}

// the summary table's head and body, into `table`: the kernel's `summary` where it has one for a metric, else
// liveStats (marked provisional); `sort` ({variant, metric, dir} or null) marks the cell the rows are sorted by
function fillSummary(table, { summary, titles, metrics, rows, countPartial, sort }) {
  const top = el("tr");
  top.append(el("th", "aigc-eval-corner", "metric"));
  for (const title of titles) top.append(el("th", "aigc-eval-variant", title));
  const thead = el("thead");
  thead.append(top);
  const tbody = el("tbody");
  for (const metric of metrics) {
    const entry = summary[metric];
    const provisional = !entry;
    const stats = entry ? entry.variants || [] : liveStats(titles, rows, metric, countPartial);
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
    titles.forEach((_, variant) => {
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
      if (sort && sort.metric === metric && sort.variant === variant) {
        td.classList.add("aigc-eval-sorted");
        td.dataset.dir = sort.dir;
      }
      td.title = `sort the rows by ${titles[variant]}'s ${metric}` + (provisional ? " (so far)" : "");
      tr.append(td);
    });
    tbody.append(tr);
  }
  table.append(thead, tbody);
}

// the rows' indices, in the data's order or sorted by one variant's score (rows without it last)
function sortedOrder(rows, sort) {
  const order = rows.map((row, index) => index);
  if (!sort) return order;
  const { variant, metric, dir } = sort;
  const sign = dir === "desc" ? -1 : 1;
  return order.sort((i, j) => {
    const x = score(rows[i], variant, metric);
    const y = score(rows[j], variant, metric);
    if (x === null && y === null) return i - j;
    if (x === null) return 1;
    if (y === null) return -1;
    return x === y ? i - j : sign * (x - y);
  });
}

// the filter bar: the metric, the variants A and B compared (with "A fails and B passes" and "variants
// disagree": `pairControls`, hidden with one variant), the text search and how many rows are shown
function filterBar() {
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
  return { filters, metricSelect, aSelect, bSelect, failPass, disagree, search, shown, pairControls };
}

// a <select>'s options, [value, text] each, and the chosen one
function fillSelect(select, options, value) {
  select.replaceChildren();
  options.forEach(([val, text]) => {
    const option = el("option", "", text);
    option.value = String(val);
    select.append(option);
  });
  select.value = String(value);
}

// whether a row passes the filter bar's filters (`state`: metric, a, b, aFailsBPasses, disagree, search)
function matches(row, state, variants, ranges) {
  const metric = state.metric;
  if (metric && variants > 1) {
    if (state.aFailsBPasses) {
      const a = passes(score(row, state.a, metric), ranges[metric]);
      const b = passes(score(row, state.b, metric), ranges[metric]);
      if (!(a === false && b === true)) return false;
    }
    if (state.disagree) {
      const verdicts = Array.from({ length: variants }, (_, v) => passes(score(row, v, metric), ranges[metric]))
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
