// Parts of EvalGrid's front end for human review and suites (put in front of eval_grid.js, whose `el`, `fmt`
// and `isNumber` they use): the review bar of a cell, the agreement table, a promptfoo test's checks. Every
// text from a model, the data or a person goes in with textContent.

const EMPTY_RATING = { pass: null, score: null, note: "" };

// pass ✓, fail ✗ and the scores 1–5 as buttons (aria-pressed shows the rating); ✎ when there is a note
function reviewBar(rating) {
  const r = rating || EMPTY_RATING;
  const bar = el("div", "aigc-eval-review");
  const button = (text, rate, value, title, pressed) => {
    const b = el("button", `aigc-eval-rate aigc-eval-rate-${rate}`, text);
    b.dataset.rate = rate;
    if (value !== undefined) b.dataset.value = String(value);
    b.tabIndex = -1;
    b.title = title;
    b.setAttribute("aria-pressed", pressed ? "true" : "false");
    return b;
  };
  bar.append(button("✓", "pass", undefined, "pass (p)", r.pass === true),
    button("✗", "fail", undefined, "fail (f)", r.pass === false));
  for (let value = 1; value <= 5; value++) {
    bar.append(button(String(value), "score", value, `score ${value} of 5 (${value})`, r.score === value));
  }
  if (r.note) {
    const note = el("span", "aigc-eval-note-mark", "✎");
    note.title = r.note;
    bar.append(note);
  }
  return bar;
}

// how far each automatic metric agrees with people: Cohen's kappa on pass/fail, Spearman's rho on scores
function agreementTable(agreement, metrics) {
  const table = el("table", "aigc-eval-agreement");
  const names = metrics.filter((name) => agreement[name]);
  if (!names.length) {
    table.hidden = true;
    return table;
  }
  const head = el("tr");
  for (const [text, title] of [["agreement with people", "computed over every rated answer counted in the means"],
    ["Cohen's κ (pass/fail)", "people's pass/fail against the metric's pass (its score in the upper half of its range); scikit-learn's cohen_kappa_score"],
    ["Spearman's ρ (1–5)", "people's 1–5 scores against the metric's values; scipy's spearmanr"]]) {
    const th = el("th", "", text);
    th.title = title;
    head.append(th);
  }
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const name of names) {
    const entry = agreement[name];
    const tr = el("tr");
    tr.dataset.metric = name;
    tr.append(el("th", "aigc-eval-metric-name", name));
    for (const [key, count] of [["kappa", "kappa_n"], ["rho", "rho_n"]]) {
      const td = el("td", "aigc-eval-agree");
      td.dataset.kind = key;
      td.dataset.value = isNumber(entry[key]) ? String(entry[key]) : "";
      td.dataset.n = String(entry[count] ?? 0);
      td.append(el("span", "aigc-eval-mean", fmt(entry[key])), el("span", "aigc-eval-n", ` (${entry[count] ?? 0})`));
      if (!isNumber(entry[key])) td.title = "not defined: fewer than 2 (κ) or 3 (ρ) rated answers, or one side never varies";
      tr.append(td);
    }
    tbody.append(tr);
  }
  table.append(thead, tbody);
  return table;
}

// a promptfoo test's assertions: ✓ or ✗, the type and its value; the reason in the tooltip (all of it in
// the detail, as a table)
function checksList(checks, full = false) {
  const list = el(full ? "table" : "div", "aigc-eval-checks");
  for (const check of checks || []) {
    const line = el(full ? "tr" : "div", "aigc-eval-check");
    line.dataset.type = check.type;
    line.dataset.pass = check.pass ? "1" : "0";
    const mark = check.pass ? "✓" : "✗";
    const value = check.value === undefined || check.value === null ? "" : String(check.value);
    if (full) {
      line.append(el("td", "aigc-eval-check-mark", mark), el("td", "", check.type), el("td", "", value),
        el("td", "", fmt(check.score)), el("td", "", fmt(check.weight)), el("td", "aigc-eval-reason", check.reason || ""));
    } else {
      line.append(el("span", "aigc-eval-check-mark", `${mark} `), el("span", "", check.type),
        el("span", "aigc-eval-check-value", value ? ` ${value}` : ""));
      line.title = `${check.type} ${value}\n${check.pass ? "passed" : "failed"}, score ${fmt(check.score)}`
        + (check.reason ? `\n${check.reason}` : "");
    }
    line.style.color = check.pass ? "" : "var(--jp-error-color1, #c62828)";
    list.append(line);
  }
  return list;
}
