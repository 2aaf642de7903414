"use strict";
// The sentence explorer of a seqls page: draws the rows of one test set from the JSON in #data,
// filtered and sorted as the controls say. State can be given in the address's fragment, e.g.
// `#split=0&filter=differ&sort=gain1&limit=0`. Script errors are shown in #errors and flagged on
// <body data-errors>; <body data-matching>, <body data-rows> and <body data-render-ms> say what was drawn.
(function () {
  const started = performance.now();
  const $ = (id) => document.getElementById(id);
  window.addEventListener("error", (e) => {
    $("errors").hidden = false;
    $("errors").textContent += "script error: " + e.message + "\n";
    document.body.dataset.errors = "1";
  });
  const data = JSON.parse($("data").textContent);
  if (!data.length) return;
  const split = $("split"), filter = $("filter"), sort = $("sort"), limit = $("limit");
  const table = $("sentences"), shown = $("shown");
  data.forEach((s, i) => split.add(new Option(s.title, String(i))));

  function fillSort() {
    const s = data[+split.value];
    sort.textContent = "";
    sort.add(new Option("sentence number", "index"));
    for (let k = 1; k < s.systems.length; k++) {
      const what = "sentence BLEU " + s.systems[k] + " − " + s.systems[0];
      sort.add(new Option(what + ", largest gain first", "gain" + k));
      sort.add(new Option(what + ", largest loss first", "loss" + k));
    }
  }
  const flagged = (s, k, i, which) => {
    const f = s.flags[k];
    return Boolean(f && f[i] && f[i][which] === 1);
  };
  function keep(s, i) {
    switch (filter.value) {
      case "differ": return s.outputs.some((o) => o[i] !== s.outputs[0][i]);
      case "search-error": return s.systems.some((_, k) => flagged(s, k, i, 0));
      case "empty-optimum": return s.systems.some((_, k) => flagged(s, k, i, 1));
      default: return true;
    }
  }
  function mark(symbol, title) {
    const m = document.createElement("span");
    m.className = "mark";
    m.textContent = symbol;
    m.title = title;
    return m;
  }
  function output(s, k, i) {
    const td = document.createElement("td");
    const words = s.outputs[k][i].split(/\s+/).filter((w) => w.length > 0);
    const p = s.probs[k] && s.probs[k][i];
    const bleu = document.createElement("span");
    bleu.className = "bleu";
    bleu.textContent = s.bleu[k][i].toFixed(1);
    td.append(bleu);
    words.forEach((w, j) => {
      const span = document.createElement("span");
      span.textContent = w;
      if (p && p.length === words.length) {
        span.style.backgroundColor = "rgba(220, 40, 30, " + (1 - p[j]).toFixed(3) + ")";
        span.title = "p = " + p[j];
      }
      td.append(span, " ");
    });
    if (words.length === 0) td.append(mark("(empty)", "the output is the empty translation"));
    if (flagged(s, k, i, 0)) td.append(mark("⚠", "search error: exact search found a higher-scoring translation"));
    if (flagged(s, k, i, 1)) td.append(mark("∅", "the exact optimum is the empty translation"));
    return td;
  }
  function cell(tr, text) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  function draw() {
    const s = data[+split.value];
    const rows = [];
    for (let i = 0; i < s.references.length; i++) if (keep(s, i)) rows.push(i);
    if (sort.value !== "index") {
      const k = +sort.value.slice(4);
      const d = (i) => s.bleu[k][i] - s.bleu[0][i];
      const sign = sort.value.startsWith("gain") ? -1 : 1;
      rows.sort((a, b) => sign * (d(a) - d(b)) || a - b);
    }
    const n = Math.min(+limit.value || rows.length, rows.length);
    table.textContent = "";
    const head = table.insertRow();
    ["#", "source", "reference"].concat(s.systems).forEach((h) => {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    });
    for (const i of rows.slice(0, n)) {
      const tr = table.insertRow();
      tr.dataset.sentence = String(i + 1);
      cell(tr, String(i + 1));
      cell(tr, s.sources ? s.sources[i] : "—");
      cell(tr, s.references[i]);
      s.systems.forEach((_, k) => tr.append(output(s, k, i)));
    }
    shown.textContent = rows.length + " of " + s.references.length + " sentences match; " + n + " shown";
    document.body.dataset.matching = String(rows.length);
    document.body.dataset.rows = String(n);
  }

  const state = new URLSearchParams(location.hash.slice(1));
  if (state.has("split") && data[+state.get("split")]) split.value = state.get("split");
  fillSort();
  for (const [control, key] of [[filter, "filter"], [sort, "sort"], [limit, "limit"]]) {
    if (state.has(key) && [...control.options].some((o) => o.value === state.get(key))) {
      control.value = state.get(key);
    }
  }
  split.addEventListener("change", () => { fillSort(); draw(); });
  for (const control of [filter, sort, limit]) control.addEventListener("change", draw);
  draw();
  document.body.dataset.renderMs = (performance.now() - started).toFixed(0);
})();
