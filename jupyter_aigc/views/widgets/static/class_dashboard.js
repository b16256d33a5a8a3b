// Front end of ClassDashboard (%aigc class): the class server's state, redrawn as the kernel polls it, with the
// teacher's switch, the allowed models and (standalone) revoking a student's token. Names and model ids are
// outside text: they go in with textContent.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function num(value, digits = 2) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function render({ model, el: root }) {
  root.classList.add("aigc-class");
  const head = el("div", "aigc-class-head");
  const switchLabel = el("label", "aigc-class-switch");
  const toggle = el("input");
  toggle.type = "checkbox";
  const switchText = el("span");
  switchLabel.append(toggle, switchText);
  const models = el("span", "aigc-class-models");
  const error = el("span", "aigc-class-error");
  head.append(switchLabel, models, error);
  const figures = el("div", "aigc-class-figures");
  const table = el("table", "aigc-class-students");
  root.append(head, figures, table);

  function figure(label, value, key) {
    const box = el("div", "aigc-class-figure");
    box.dataset.key = key;
    box.append(el("div", "aigc-class-value", value), el("div", "aigc-class-label", label));
    return box;
  }

  function draw() {
    const s = model.get("state") || {};
    toggle.checked = !!s.answers;
    switchText.textContent = s.answers ? "Answers on" : "Answers paused";
    root.classList.toggle("aigc-class-paused", !s.answers);
    models.replaceChildren(el("span", "aigc-class-label", "models: "));
    for (const name of s.served || []) {
      const label = el("label", "aigc-class-model");
      const box = el("input");
      box.type = "checkbox";
      box.checked = (s.allowed || []).includes(name);
      box.dataset.model = name;
      label.append(box, el("span", "", name));
      models.append(label);
    }
    error.textContent = model.get("error") || "";
    figures.replaceChildren(
      figure("students connected", String(s.connected ?? 0), "connected"),
      figure("running", String(s.running ?? 0), "running"),
      figure("waiting", String(s.queued ?? 0), "queued"),
      figure("tokens/s", num(s.tokens_per_s, 1), "tokens_per_s"),
      figure("first token p50 (s)", num(s.ttft_p50), "ttft_p50"),
      figure("first token p95 (s)", num(s.ttft_p95), "ttft_p95"),
      figure(`llama.cpp slots busy (of ${s.slots ?? "–"})`, String(s.slots_busy ?? "–"), "slots_busy"),
      figure("llama.cpp deferred", String(s.llama?.requests_deferred ?? "–"), "deferred"),
    );
    const columns = ["student", "requests", "tokens", "refused", "running", "waiting"];
    const thead = el("thead");
    const top = el("tr");
    for (const c of columns) top.append(el("th", "", c));
    if (s.mode === "standalone") top.append(el("th", "", ""));
    thead.append(top);
    const tbody = el("tbody");
    for (const e of s.students || []) {
      const tr = el("tr");
      tr.dataset.student = e.student;
      for (const value of [e.student, e.requests, e.prompt_tokens + e.completion_tokens, e.refusals, e.running, e.queued]) {
        tr.append(el("td", "", String(value)));
      }
      if (s.mode === "standalone") {
        const td = el("td");
        const revoke = el("button", "aigc-class-revoke", "revoke");
        revoke.dataset.student = e.student;
        revoke.title = `revoke ${e.student}'s token`;
        td.append(revoke);
        tr.append(td);
      }
      tbody.append(tr);
    }
    table.replaceChildren(thead, tbody);
  }

  const listeners = new AbortController();
  root.addEventListener("change", (event) => {
    const target = event.target;
    if (target === toggle) model.send({ type: "switch", answers: toggle.checked });
    else if (target.dataset && target.dataset.model) {
      const allowed = [...models.querySelectorAll("input[data-model]")].filter((b) => b.checked).map((b) => b.dataset.model);
      model.send({ type: "switch", allowed });
    }
  }, { signal: listeners.signal });
  root.addEventListener("click", (event) => {
    const button = event.target.closest?.(".aigc-class-revoke");
    if (button) model.send({ type: "revoke", student: button.dataset.student });
  }, { signal: listeners.signal });
  model.on("change:state", draw);
  model.on("change:error", draw);
  draw();
  return () => {
    model.off("change:state", draw);
    model.off("change:error", draw);
    listeners.abort();
  };
}

export default { render };
