// Parts of EvalGrid's front end that draw the grid's cells (put in front of eval_grid.js, whose `el`, `fmt` and
// `isNumber` they use; `normalised` comes from eval_scores.js, `reviewBar` and `checksList` from
// eval_review.js): the head row, an example's fields, an answer's cell (output, partial mark, choices, checks,
// review bar, score badges), and the same answer in full for the detail panel. Every text from the data, a
// model or a person (fields, prompts, outputs, errors, reasons, choices, notes, titles, metric names) goes in
// with textContent.

// the grid's head row: "example" (click: back to the data's order), then each variant's title with ▼/▲ and the
// metric when the rows are sorted by it (click: sort); in blind review "answer 1", "answer 2"… and no sorting
function headRow(titles, sort, blind) {
  const tr = el("tr");
  const example = el("th", "aigc-eval-example-head", "example");
  example.title = "back to the data's order";
  example.dataset.reset = "1";
  tr.append(example);
  titles.forEach((title, variant) => {
    const th = el("th", "aigc-eval-variant-head");
    if (blind) {
      th.append(el("span", "aigc-eval-title", `answer ${variant + 1}`));
      th.title = "blind review: each row's answers are shuffled and their names hidden until Reveal names";
      tr.append(th);
      return;
    }
    th.dataset.variant = variant;
    th.append(el("span", "aigc-eval-title", title));
    const arrow = el("span", "aigc-eval-arrow");
    if (sort && sort.variant === variant) {
      th.classList.add("aigc-eval-sorted");
      th.dataset.dir = sort.dir;
      arrow.textContent = ` ${sort.dir === "desc" ? "▼" : "▲"} ${sort.metric}`;
    }
    th.append(arrow);
    th.title = "sort by this variant's score for the chosen metric";
    tr.append(th);
  });
  return tr;
}

// a row's first cell: the example's first 3 fields (all of them in the detail panel)
function fieldsCell(row, fields) {
  const td = el("td", "aigc-eval-fields");
  const names = fields.slice(0, 3);
  for (const name of names) {
    const line = el("div", "aigc-eval-field");
    const value = row.fields?.[name] ?? "";
    line.append(el("span", "aigc-eval-field-name", `${name}: `), el("span", "aigc-eval-field-value", value));
    line.title = `${name}: ${value}`;
    line.dataset.field = name;
    td.append(line);
  }
  const extra = fields.length - names.length;
  if (extra > 0) td.append(el("div", "aigc-eval-more", `+${extra} more (click an answer)`));
  return td;
}

// a score as a coloured badge: its hue from the metric's range (red 0 to green 1), grey without one
function badge(metric, value, range) {
  const span = el("span", "aigc-eval-badge");
  span.dataset.metric = metric;
  span.dataset.value = isNumber(value) ? String(value) : "";
  span.append(el("span", "aigc-eval-badge-name", metric), el("span", "aigc-eval-badge-value", fmt(value)));
  if (isNumber(value) && range) {
    span.dataset.scale = "range";
    span.style.setProperty("--aigc-hue", String(Math.round(120 * normalised(value, range))));
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

// one answer's cell of the grid. `at`: {row, variant, position} (the cell's place); `view`: {running, blind,
// countPartial, metrics, ranges} (the same for every cell); `rating`: the person's, or null; `selected`: shown
// in the detail panel
function answerCell(cell, at, view, rating, selected) {
  const td = el("td", "aigc-eval-cell");
  td.dataset.variant = at.variant;
  td.dataset.position = at.position;
  td.dataset.row = at.row;
  td.dataset.status = cell.status || "waiting";
  td.tabIndex = 0;
  if ((cell.status === "waiting" || !cell.status) && !view.running) {
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
      const mark = el("div", "aigc-eval-partial", `partial: ${cell.finish === "stopped" ? "stopped" : "cut off"}`
        + (view.countPartial ? "" : ", not in the means"));
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
    if (cell.checks && !view.blind) td.append(checksList(cell.checks));
    if (cell.status === "done" && !cell.choice) { // people review generated answers, not choice picks
      td.append(reviewBar(rating));
      td.dataset.pass = rating?.pass === true ? "1" : rating?.pass === false ? "0" : "";
      td.dataset.score = rating?.score ?? "";
    }
    const badges = el("div", "aigc-eval-badges");
    const shown = view.blind ? [] : view.metrics.filter((m) => m !== "human" && m !== "human_pass");
    for (const metric of shown) badges.append(badge(metric, cell.scores?.[metric], view.ranges[metric]));
    if (cell.reused && !view.blind) {
      const mark = el("span", "aigc-eval-reused-mark", "↺");
      mark.title = "reused from an earlier run";
      badges.append(mark);
    }
    td.append(badges);
  }
  if (selected) td.classList.add("aigc-eval-selected");
  return td;
}

function section(title, body) {
  const box = el("div", "aigc-eval-section");
  box.append(el("div", "aigc-eval-section-title", title), body);
  return box;
}

// what the detail panel shows of one answer, after its head: every field of the example, the prompt, the whole
// output (or the choices), the error, the review box; then, unless blind, the checks, every score, the reason
// and how the answer came. `at`: {row, variant}; `view`: {fields, metrics, running, blind, countPartial}
function detailParts(row, cell, at, view, rating) {
  const fieldList = el("div", "aigc-eval-detail-fields");
  const names = [...view.fields];
  for (const name of Object.keys(row.fields || {})) if (!names.includes(name)) names.push(name);
  for (const name of names) {
    const value = el("div", "aigc-eval-detail-value", row.fields?.[name] ?? "");
    value.dataset.field = name;
    fieldList.append(el("div", "aigc-eval-detail-name", name), value);
  }
  const parts = [section("data", fieldList)];
  parts.push(section("prompt", el("pre", "aigc-eval-prompt", cell.prompt || "")));
  if (cell.status === "waiting") {
    const text = view.running ? "waiting for the answer…" : "not run (the run was stopped)";
    parts.push(section("output", el("div", "aigc-eval-waiting", text)));
    return parts;
  }
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
    noteBox.dataset.row = at.row;
    noteBox.dataset.variant = at.variant;
    box.append(reviewBar(rating), noteBox);
    box.dataset.row = at.row;
    box.dataset.variant = at.variant;
    parts.push(section("your review", box));
  }
  if (view.blind) {
    parts.push(el("div", "aigc-eval-meta", "blind review: scores and names are hidden until Reveal names"));
    return parts;
  }
  if (cell.checks) parts.push(section("assertions", checksList(cell.checks, true)));
  const scores = el("table", "aigc-eval-detail-scores");
  for (const metric of view.metrics) {
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
  if (cell.partial) meta.push(view.countPartial ? "partial, counted in the means" : "partial: not in the means");
  if (isNumber(cell.elapsed)) meta.push(`${cell.elapsed.toFixed(2)} s`);
  meta.push(cell.reused ? "reused from an earlier run" : "asked in this run");
  parts.push(el("div", "aigc-eval-meta", meta.join(" · ")));
  return parts;
}
