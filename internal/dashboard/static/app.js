// The asymptote dashboard: plain JavaScript over the HTTP API
// (/api/v1/...), Plotly for the plots and Tabulator for the trial table.
// Views: #/ (studies), #/study/NAME, #/agents.
"use strict";

const api = (path) => fetch("/api/v1" + path).then(async (r) => {
  const body = await r.json();
  if (!r.ok) throw new Error((body.field ? body.field + ": " : "") + body.error);
  return body;
});
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
// sci writes a count the way a spec does (2e8).
const sci = (v) => (typeof v === "number" && Math.abs(v) >= 1e5 ? v.toExponential().replace("e+", "e") : num(v));
const num = (v) => (typeof v === "number" ? (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toPrecision(5)) : v);

// Everything a view starts (timers, streams) is stopped when the view
// changes.
let stops = [];
function onLeave(f) { stops.push(f); }
function leave() { stops.forEach((f) => f()); stops = []; }

window.addEventListener("hashchange", route);
window.addEventListener("load", route);

function route() {
  leave();
  const h = location.hash || "#/";
  const m = h.match(/^#\/study\/(.+)$/);
  if (m) return studyView(decodeURIComponent(m[1]));
  if (h === "#/agents") return agentsView();
  return studiesView();
}

// FIRST_ROWS is how many trials a study's table shows before the rest
// have come.
const FIRST_ROWS = 1000;

// plotly loads Plotly, once, and resolves to it. It is not among the
// page's scripts: parsing its 4.5 MB holds the page's one thread for a
// second or more, which a study's page spends filling its table first.
let plotlyLoad = null;
function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoad) {
    plotlyLoad = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/static/vendor/plotly.min.js";
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => {
        plotlyLoad = null;
        reject(new Error("could not load the plotting library (/static/vendor/plotly.min.js); reload the page"));
      };
      document.head.appendChild(s);
    });
  }
  return plotlyLoad;
}

function every(ms, f) {
  f();
  const id = setInterval(f, ms);
  onLeave(() => clearInterval(id));
}

function bar(done, total) {
  const pct = total ? Math.round((100 * done) / total) : 0;
  return `<span class="bar"><span style="width:${pct}%"></span></span> ${done}/${total}`;
}

// -- studies ---------------------------------------------------------------

function studiesView() {
  $("#main").innerHTML = `<h1>Studies</h1><div id="studies" class="card">loading…</div>`;
  every(2000, async () => {
    try {
      const { studies } = await api("/studies");
      if (!$("#studies")) return; // the view changed while we waited
      const rows = (studies || []).map((s) => {
        const c = s.counts || {};
        const done = (c.succeeded || 0) + (c.failed || 0) + (c.cancelled || 0);
        return `<tr><td><a href="#/study/${encodeURIComponent(s.name)}">${esc(s.name)}</a></td><td>${esc(s.state)}</td>
          <td>${bar(done, s.trials)}</td><td>${esc(s.method)}</td><td>${esc(s.objective)} (${esc(s.direction)})</td>
          <td class="muted">${esc(new Date(s.updated).toLocaleString())}</td></tr>`;
      });
      $("#studies").innerHTML = rows.length
        ? `<table class="simple" id="study-list"><tr><th>study</th><th>state</th><th>progress</th><th>method</th><th>objective</th><th>updated</th></tr>${rows.join("")}</table>`
        : `<p class="muted">No studies yet: <code>asymptote submit STUDY.yaml</code>.</p>`;
    } catch (e) {
      if ($("#studies")) $("#studies").innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  });
}

// -- agents ----------------------------------------------------------------

function agentsView() {
  $("#main").innerHTML = `<h1>Agents</h1><div id="agents" class="card">loading…</div>`;
  every(2000, async () => {
    try {
      const r = await api("/agents");
      if (!$("#agents")) return; // the view changed while we waited
      const rows = r.agents.map((a) => `<tr><td>${esc(a.id)}</td><td>${esc(a.state)}</td>
        <td>${num(a.cpu)}${r.live ? ` (${num(a.free_cpu)} free)` : ""}</td>
        <td>${(a.gpus || []).length}</td><td>${r.live ? a.running + (a.waiting ? ` + ${a.waiting} waiting` : "") : "?"}</td>
        <td>${esc((a.methods || []).join(", "))}</td><td class="muted">${esc(new Date(a.last_seen).toLocaleTimeString())}</td></tr>`);
      $("#agents").innerHTML = `<p class="muted">${r.live ? "leader " + esc(r.leader) : esc(r.note)}</p>
        <table class="simple"><tr><th>agent</th><th>state</th><th>CPU</th><th>GPUs</th><th>running</th><th>methods</th><th>last seen</th></tr>${rows.join("")}</table>`;
    } catch (e) {
      if ($("#agents")) $("#agents").innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  });
}

// -- one study -------------------------------------------------------------

function studyView(name) {
  // The page marks when its table first shows trials and when it holds
  // them all (the browser's performance panel shows the marks; the
  // dashboard's benchmark reads them).
  performance.clearMarks();
  performance.mark("study:open");
  $("#main").innerHTML = `
    <h1>${esc(name)} <span id="state" class="muted"></span></h1>
    <div class="card counts" id="counts"></div>
    <div class="cards">
      <div class="card"><h2>Trials</h2><div id="fixed" class="muted"></div><div id="trials"></div></div>
      <div class="card"><h2>Parameters and objective <span class="muted">(drag along an axis to filter the table) <span id="pcnote"></span></span></h2><div id="parcoords" class="plot"></div></div>
      <div class="card"><h2>Learning curves</h2>
        <div class="controls">x: <select id="xaxis"><option>step</option><option>tokens</option><option>flops</option></select>
          <label><input type="checkbox" id="logx"> log x</label><label><input type="checkbox" id="logy"> log y</label></div>
        <div id="curves" class="plot"></div></div>
      <div class="card"><h2>Scaling law</h2><div id="fit" class="plot"></div><div id="fitinfo" class="muted"></div></div>
      <div class="card" id="epochs-card" hidden><h2>Repeated data <span class="muted">(ring: best; cross: worse than the best beyond the seed noise)</span></h2>
        <div id="epochs" class="plot"></div><div id="epochsinfo" class="muted"></div></div>
      <div class="card"><h2>Decisions</h2><div id="decisions" class="muted">none</div></div>
    </div>`;
  const state = { name, study: null, trials: new Map(), changed: new Set(), table: null, selected: null, dirty: true, quiet: new Map(), paramKeys: new Set() };

  state.table = new Tabulator("#trials", {
    height: "400px", layout: "fitDataFill", index: "trial", placeholder: "no trials yet",
    columns: [{ title: "trial", field: "trial" }, { title: "state", field: "state" }],
    // The marks live in the state, so a row the table redraws (a new
    // result, a scroll) keeps them.
    rowFormatter: (row) => {
      const el = row.getElement(), id = row.getData().trial;
      el.classList.toggle("selected-trial", id === state.selected);
      el.classList.toggle("hovered-trial", id === state.hovered);
    },
  });
  state.table.on("rowClick", (_e, row) => select(state, row.getData().trial));
  state.table.on("rowMouseEnter", (_e, row) => hover(state, row.getData().trial));
  state.table.on("rowMouseLeave", () => hover(state, null));
  // Tabulator builds itself asynchronously; nothing may touch it before.
  state.table.on("tableBuilt", () => { state.ready = true; state.dirty = true; refresh(state); });
  // Plots wait while the table is in use.
  for (const ev of ["dataSorting", "dataFiltering", "scrollVertical"]) {
    state.table.on(ev, () => state.quiet.size && whenQuiet(state));
  }
  onLeave(() => { clearTimeout(state.quietTimer); state.left = true; });

  // Changes stream in from the moment the page opens; the records
  // themselves come in bulk, as columns with the one metric the page
  // reads (it counts the trials itself, so the study comes without its
  // counts). An event applies only if it is not older than what the page
  // holds, so the order of the two does not matter.
  const es = new EventSource(`/api/v1/studies/${encodeURIComponent(name)}/events?snapshot=0`);
  onLeave(() => es.close());
  es.onerror = () => $("#live").classList.remove("on");
  onLeave(() => $("#live").classList.remove("on"));
  // put holds a trial record from the stream; putPage a page of the bulk
  // load, whose new trials fill the table anew, so only those the stream
  // brought first are marked changed.
  const put = (t) => {
    const old = state.trials.get(t.id);
    if (old && stamp(old) > stamp(t)) return;
    for (const k in t.params) state.paramKeys.add("p:" + k);
    state.trials.set(t.id, t);
    state.changed.add(t.id);
    state.dirty = true;
  };
  const putPage = (page) => {
    for (const k in page.params || {}) state.paramKeys.add("p:" + k);
    for (const t of fromColumns(page)) {
      const old = state.trials.get(t.id);
      if (old && stamp(old) > stamp(t)) continue;
      state.trials.set(t.id, t);
      if (old) state.changed.add(t.id); // the stream's came first
    }
    state.dirty = true;
  };
  es.addEventListener("study", (ev) => { state.study = JSON.parse(ev.data); state.dirty = true; });
  es.addEventListener("trial", (ev) => put(JSON.parse(ev.data)));
  // The bulk load starts once the stream is open: the server fixes the
  // stream's starting point before it answers, so nothing falls between.
  // It comes in two requests: the first FIRST_ROWS trials, which the
  // table shows as soon as they are in, and the rest, which the table
  // then holds too (a sort or filter set meanwhile then applies to every
  // trial).
  es.onopen = () => {
    $("#live").classList.add("on");
    if (state.loading) return; // a reconnect
    state.loading = true;
    const enc = encodeURIComponent(name), cols = `/studies/${enc}/trials?format=columns&metric=unique_tokens`;
    const first = api(`${cols}&limit=${FIRST_ROWS}`), rest = api(`${cols}&offset=${FIRST_ROWS}`);
    const head = Promise.all([api(`/studies/${enc}?counts=0`), first]).then(([st, page]) => {
      if (state.left) return;
      if (!state.study) state.study = st;
      state.fitLaw = st.fit_law || "";
      putPage(page);
      state.pending = page.total - page.count;
      state.loaded = true;
      state.dirty = true;
      refresh(state);
    });
    Promise.all([head, rest])
      .then(([, page]) => {
        if (state.left) return;
        putPage(page);
        state.pending = 0;
        state.dirty = true;
        // After the browser has painted the first rows.
        requestAnimationFrame(() => setTimeout(() => !state.left && refresh(state)));
      })
      .catch((e) => { if (!state.left) $("#counts").innerHTML = `<p class="error">${esc(e.message)}</p>`; });
  };

  ["xaxis", "logx", "logy"].forEach((id) => $("#" + id).addEventListener("change", () => curves(state)));
  // Render what changed at most a few times a second; the plots that
  // read more than the stream (curves, fit) refresh on their own clocks.
  every(300, () => refresh(state));
  every(3000, () => state.ready && curves(state));
  every(5000, () => fit(state));
  every(5000, () => epochs(state));
  every(2000, () => paused(state));
}

// paused asks how many succeeded trials wait for a promotion (the
// leader counts them; a record does not say), while the study runs.
async function paused(state) {
  const st = state.study;
  if (!st || (st.state !== "active" && st.state !== "submitting")) {
    if (state.paused) { state.paused = 0; state.dirty = true; }
    return;
  }
  try {
    const r = await api(`/studies/${encodeURIComponent(state.name)}?counts=0&paused=1`);
    if ((r.paused || 0) !== (state.paused || 0)) { state.paused = r.paused || 0; state.dirty = true; }
  } catch (e) {
    // The counts stay as they are; the next poll asks again.
  }
}

// refresh renders what changed, if the table and the trials are there.
function refresh(state) {
  if (state.ready && state.loaded && state.dirty) {
    state.dirty = false;
    render(state);
  }
}

// stamp is when a trial's record last changed, in Unix milliseconds: a
// record from the event stream has it as text, one from the bulk load as
// a number.
function stamp(t) {
  return typeof t.updated === "number" ? t.updated : Date.parse(t.updated);
}

// fromColumns turns the bulk load's columns (format=columns) into the
// parts of trial records the page reads. A trial has a result when it has
// an objective or a metric.
const NO_METRICS = Object.freeze({});

function fromColumns(c) {
  const params = Object.entries(c.params || {}), metrics = Object.entries(c.metrics || {});
  const keys = params.map(([k]) => "p:" + k);
  const out = new Array(c.count);
  for (let i = 0; i < c.count; i++) {
    const p = {};
    // The table's row is built in the same pass (see row).
    const r = { trial: c.id[i], state: c.state[i], seed: c.seed[i], attempts: c.attempt[i] };
    for (let j = 0; j < params.length; j++) {
      const v = params[j][1][i];
      if (v === null) continue;
      p[params[j][0]] = v;
      r[keys[j]] = v;
    }
    let result = null;
    const obj = c.objective[i];
    r.objective = obj;
    for (const [k, col] of metrics) {
      if (col[i] === null) continue;
      result = result || { objective: obj, metrics: {} };
      result.metrics[k] = col[i];
    }
    if (!result && obj !== null) result = { objective: obj, metrics: NO_METRICS };
    out[i] = { id: c.id[i], index: c.index[i], state: c.state[i], seed: c.seed[i], attempt: c.attempt[i],
      updated: Math.floor(c.updated[i] / 1000), params: p, result, row: r };
  }
  return out;
}

// row is a trial's row in the table: built once per record (a record
// from the event stream is a new one).
function row(t) {
  if (t.row) return t.row;
  const r = { trial: t.id, state: t.state, seed: t.seed, attempts: t.attempt };
  for (const k in t.params) r["p:" + k] = t.params[k];
  r.objective = t.result && t.result.objective != null ? t.result.objective : null;
  t.row = r;
  return r;
}

function render(state) {
  const st = state.study;
  const all = [...state.trials.values()];
  const counts = {};
  for (const t of all) counts[t.state] = (counts[t.state] || 0) + 1;
  const done = (counts.succeeded || 0) + (counts.failed || 0) + (counts.cancelled || 0);
  $("#state").textContent = st ? st.state : "";
  // Counts of a part would mislead: until every trial is in, the bar
  // shows the loading.
  $("#counts").innerHTML = state.pending
    ? `${bar(all.length, all.length + state.pending)} <span class="muted">trials loading</span>`
    : `${bar(done, st ? st.trials : all.length)} ` + Object.entries(counts).map(([k, v]) => `<span class="state-${k}">${k} ${v}</span>`).join("") +
      (state.paused ? `<span class="state-paused" title="succeeded at a rung, waiting for a promotion that may continue them">paused ${state.paused} of the succeeded</span>` : "");
  if (st && st.decisions && st.decisions.length) {
    $("#decisions").innerHTML = `<ul class="decisions">${st.decisions.map((d) =>
      `<li>${esc(new Date(d.time).toLocaleTimeString())}: ${esc(d.reason)}${d.added ? ` (+${d.added} trials)` : ""}</li>`).join("")}</ul>`;
  }
  // Columns are worked out again only when trials were added; otherwise
  // only the rows that changed are written to the table.
  const added = all.length !== state.shown;
  if (added) {
    state.shown = all.length;
    const rows = all.map(row);
    const allParams = [...state.paramKeys].sort();
    // The table shows what the study varies; what it holds fixed is
    // listed once above it.
    const varies = (p) => {
      const first = rows[0][p], text = JSON.stringify(first);
      return rows.some((r) => r[p] !== first && JSON.stringify(r[p]) !== text);
    };
    state.params = allParams.filter(varies);
    const fixed = allParams.filter((p) => !state.params.includes(p));
    $("#fixed").textContent = fixed.length && rows.length ? "fixed: " + fixed.map((p) => `${p.slice(2)}=${num(rows[0][p])}`).join(", ") : "";
    const want = ["trial", "state", "seed", "attempts", ...state.params, "objective"];
    const have = state.table.getColumns().map((c) => c.getField());
    if (want.join() !== have.join()) {
      state.table.setColumns(want.map((f) => ({
        title: f === "objective" && st ? st.objective : f.replace(/^p:/, ""), field: f, headerFilter: f === "state" ? "input" : undefined,
        formatter: (cell) => esc(num(cell.getValue())), sorter: f === "trial" || f === "state" ? "string" : "number",
      })));
    }
    const whole = !state.pending;
    state.table.replaceData(rows).then(() => {
      if (rows.length && !performance.getEntriesByName("table:first-trials").length) performance.mark("table:first-trials");
      if (whole && !performance.getEntriesByName("table:all-trials").length) performance.mark("table:all-trials");
      applyFilter(state);
      // The plots load once every trial is in and the table has gone
      // unused.
      if (whole) {
        whenQuiet(state, "plots", () => plotly().then(() => {
          if (!$("#curves")) return; // the view changed
          state.dirty = true;
          curves(state);
          fit(state);
          epochs(state);
        }).catch((e) => { $("#fitinfo").textContent = e.message; }));
      }
    });
  } else if (state.changed.size) {
    state.table.updateOrAddData([...state.changed].map((id) => row(state.trials.get(id)))).then(() => applyFilter(state));
  }
  state.changed.clear();
  // Parallel coordinates redraw on WebGL: at most every 5 s, and only
  // when the finished trials changed.
  const finished = counts.succeeded || 0;
  const now = Date.now();
  if (state.pending) {
    // Drawn once every trial is in.
  } else if (finished !== state.pcFinished && now - (state.pcAt || 0) > 5000) {
    state.pcFinished = finished;
    state.pcAt = now;
    whenQuiet(state, "parcoords", () => plotly().then(() => $("#parcoords") && parcoords(state, [...state.trials.values()].map(row), state.params)));
  } else if (finished !== state.pcFinished) {
    state.dirty = true; // come back for it
  }
}

// QUIET_MS is how long the table must go unused (no sort, filter or
// scroll) before the parallel coordinates draw.
const QUIET_MS = 1000;

// whenQuiet runs draw (the job named name: a later one of the same name
// replaces it) once the table has painted and gone unused for QUIET_MS: a
// plot holds the page's one thread (seconds, for thousands of lines in
// software WebGL, or to load Plotly), and must not stand between someone
// and the table they have just opened or sorted. Using the table again
// first puts the jobs off again; whenQuiet(state) alone only does that.
function whenQuiet(state, name, draw) {
  if (name) state.quiet.set(name, draw);
  clearTimeout(state.quietTimer);
  state.quietTimer = setTimeout(() => {
    const jobs = [...state.quiet.values()];
    state.quiet.clear();
    for (const f of jobs) requestIdleCallback(f, { timeout: QUIET_MS });
  }, QUIET_MS);
}

function numericParams(rows, params) {
  return params.filter((p) => rows.some((r) => typeof r[p] === "number") && new Set(rows.map((r) => r[p])).size > 1);
}

// MAX_LINES bounds the lines the parallel coordinates draw; brushing
// still filters on every trial.
const MAX_LINES = 5000;

function parcoords(state, rows, params) {
  const done = rows.filter((r) => r.objective != null);
  if (!done.length) return;
  const dims = numericParams(done, params);
  const spec = dims.map((p) => {
    let lo = Infinity, hi = -Infinity, pos = true;
    for (const r of done) {
      const v = r[p];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (!(v > 0)) pos = false;
    }
    return { p, log: pos && hi / lo > 100 };
  });
  const value = (r, j) => (j < spec.length ? (spec[j].log ? Math.log10(r[spec[j].p]) : r[spec[j].p]) : r.objective);
  const every = Math.ceil(done.length / MAX_LINES);
  const drawn = every > 1 ? done.filter((_, i) => i % every === 0) : done;
  $("#pcnote").textContent = every > 1 ? `(${drawn.length} of ${done.length} lines drawn)` : "";
  const dimensions = [...Array(spec.length + 1).keys()].map((j) => ({
    label: j < spec.length ? spec[j].p.slice(2) + (spec[j].log ? " (log10)" : "") : (state.study ? state.study.objective : "objective"),
    values: drawn.map((r) => value(r, j)),
  }));
  const prev = state.pc;
  state.pcAll = { rows: done, value };
  if (prev && prev.drawn === drawn.length && prev.dims === dims.join()) {
    // Keep the user's brushes: only refresh values.
    Plotly.restyle("parcoords", { dimensions: [dimensions.map((d, i) => ({ ...d, constraintrange: prev.ranges[i] }))] });
    return;
  }
  state.pc = { drawn: drawn.length, dims: dims.join(), ranges: dimensions.map(() => undefined) };
  Plotly.react("parcoords", [{
    type: "parcoords", dimensions,
    line: { color: drawn.map((r) => r.objective), colorscale: "Viridis", reversescale: !state.study || state.study.direction !== "maximize", showscale: true },
  }], { margin: { l: 60, r: 60, t: 40, b: 20 } }, { displayModeBar: false, responsive: true });
  const el = $("#parcoords");
  el.removeAllListeners && el.removeAllListeners("plotly_restyle");
  el.on("plotly_restyle", () => {
    state.pc.ranges = el.data[0].dimensions.map((d) => d.constraintrange);
    applyFilter(state);
  });
}

// applyFilter keeps in the table the trials inside every brushed range,
// over every finished trial, drawn or not.
function applyFilter(state) {
  const pc = state.pc;
  if (!pc || !state.pcAll || !pc.ranges.some((r) => r)) {
    // Clearing refilters every row: only when a filter is set.
    if (state.filtered) state.table.clearFilter();
    state.filtered = false;
    return;
  }
  state.filtered = true;
  const { rows, value } = state.pcAll;
  const keep = new Set();
  for (const r of rows) {
    const ok = pc.ranges.every((rg, j) => {
      if (!rg) return true;
      const v = value(r, j);
      const spans = Array.isArray(rg[0]) ? rg : [rg];
      return spans.some(([lo, hi]) => v >= lo && v <= hi);
    });
    if (ok) keep.add(r.trial);
  }
  state.table.setFilter((data) => keep.has(data.trial));
}

function select(state, id) {
  const was = state.selected;
  state.selected = was === id ? null : id;
  reformat(state, was, state.selected);
  curves(state);
  fit(state);
}

// marked reports whether trial id is drawn out in the plots: selected, or
// under the pointer.
function marked(state, id) {
  return !!id && (id === state.selected || id === state.hovered);
}

// reformat marks the table rows of the trials given, whose marks changed
// (the row formatter marks them again whenever the table redraws them).
function reformat(state, ...ids) {
  for (const id of ids) {
    const row = id && state.table.getRow(id);
    if (!row) continue;
    const el = row.getElement();
    el.classList.toggle("selected-trial", id === state.selected);
    el.classList.toggle("hovered-trial", id === state.hovered);
  }
}

// pickable makes a plot select the trial under a click, as a click on its
// table row does: the row is highlighted and scrolled to, and the curves
// and the fit's points restyle. A trace names its trial in meta (one
// trial per trace) or in text (one per point).
function pickable(state, el) {
  if (!el || el.dataset.pickable) return;
  el.dataset.pickable = "1";
  const trialOf = (ev) => {
    const p = ev.points && ev.points[0];
    const id = p && ((p.data && p.data.meta) || p.text);
    return id && state.trials.has(id) ? id : null;
  };
  el.on("plotly_click", (ev) => {
    const id = trialOf(ev);
    if (!id) return;
    select(state, id);
    if (state.selected) state.table.scrollToRow(id, "center", false).catch(() => {});
  });
  el.on("plotly_hover", (ev) => hover(state, trialOf(ev)));
  el.on("plotly_unhover", () => hover(state, null));
}

// hover shows the trial under the pointer (in a plot or the table) in
// every view at once, without selecting it: its row is tinted, its curve
// drawn thick and its point enlarged, until the pointer leaves.
function hover(state, id) {
  if (state.hovered === id) return;
  const was = state.hovered;
  state.hovered = id;
  reformat(state, was, id);
  const c = $("#curves");
  if (c && c.data && c.data.length) {
    Plotly.restyle(c, { "line.width": c.data.map((t) => (marked(state, t.meta) ? 4 : 1.2)) });
  }
  const f = $("#fit");
  if (f && f.data) {
    const idx = [], sizes = [];
    f.data.forEach((t, i) => {
      if (t.mode === "markers" && t.text) {
        idx.push(i);
        sizes.push(t.text.map((tr) => (marked(state, tr) ? 14 : 7)));
      }
    });
    if (idx.length) Plotly.restyle(f, { "marker.size": sizes }, idx);
  }
}

async function curves(state) {
  if (!window.Plotly) return; // drawn once it has loaded
  // Running trials first, then the best finished: at most 60 curves.
  const all = [...state.trials.values()];
  const running = all.filter((t) => t.state === "running");
  const best = all.filter((t) => t.result && t.result.objective != null)
    .sort((a, b) => a.result.objective - b.result.objective);
  if (state.study && state.study.direction === "maximize") best.reverse();
  const pick = [...running, ...best].slice(0, 60).map((t) => t.id);
  if (state.selected && !pick.includes(state.selected)) pick.push(state.selected);
  if (!pick.length) return;
  const q = new URLSearchParams({ format: "json", points: "200" });
  pick.forEach((id) => q.append("trial", id));
  let hist;
  try {
    hist = (await api(`/studies/${encodeURIComponent(state.name)}/history?${q}`)).history || [];
  } catch (e) {
    if ($("#curves")) $("#curves").innerHTML = `<p class="error">${esc(e.message)}</p>`;
    return;
  }
  if (!$("#curves")) return; // the view changed while we waited
  const metric = state.study ? state.study.objective : "val_loss";
  const xkey = $("#xaxis").value;
  const by = new Map();
  for (const r of hist) {
    const v = r.values[metric];
    if (v == null) continue;
    const x = xkey === "step" ? r.step : r.values[xkey];
    if (x == null) continue;
    const k = r.trial + "/" + r.attempt;
    if (!by.has(k)) by.set(k, { trial: r.trial, x: [], y: [] });
    by.get(k).x.push(x);
    by.get(k).y.push(v);
  }
  const traces = [...by.entries()].map(([k, c]) => ({
    x: c.x, y: c.y, mode: "lines", name: k, meta: c.trial, hovertemplate: `${c.trial}<br>%{x}: %{y}<extra></extra>`,
    line: { width: marked(state, c.trial) ? 4 : 1.2, color: c.trial === state.selected ? "#d64545" : undefined },
  }));
  Plotly.react("curves", traces, {
    showlegend: false, margin: { l: 50, r: 10, t: 10, b: 40 },
    xaxis: { title: xkey, type: $("#logx").checked ? "log" : "linear" },
    yaxis: { title: metric, type: $("#logy").checked ? "log" : "linear" },
  }, { displayModeBar: false, responsive: true });
  pickable(state, $("#curves"));
}

async function fit(state) {
  if (!window.Plotly) return; // drawn once it has loaded
  const st = state.study;
  if (!st || state.fitLaw == null) return;
  if (state.fitLaw !== "power" && state.fitLaw !== "ensemble") {
    $("#fitinfo").textContent = state.fitLaw
      ? `the analysis plan fits ${state.fitLaw}, a law over more than one variable: asymptote fit --study ${state.name} reports it`
      : "no analysis plan: add analysis: {fit: {law: power, x: params}} to the spec for a fitted curve";
    return;
  }
  // A fit bootstraps on the server: ask again only when results changed
  // (or the selection did, which only restyles).
  const results = [...state.trials.values()].filter((t) => t.result).length;
  const key = results + "/" + state.selected;
  if (key === state.fitKey) return;
  state.fitKey = key;
  let r;
  try {
    r = await api(`/studies/${encodeURIComponent(state.name)}/fit?curve=1`);
  } catch (e) {
    if ($("#fitinfo")) $("#fitinfo").textContent = e.message;
    return;
  }
  if (!$("#fit")) return; // the view changed while we waited
  const traces = [];
  const info = [];
  (r.curves || []).forEach((c, i) => {
    const f = (r.fits || [])[i] || {};
    const color = ["#2f6fec", "#e8a33d", "#1f9d55", "#9b51e0"][i % 4];
    const label = c.group ? `${r.group}=${c.group}` : "fit";
    if (c.lo && c.lo.length) {
      traces.push({ x: c.x, y: c.lo, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, name: label + " band lo" });
      traces.push({ x: c.x, y: c.hi, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: color + "33", name: label + " 95% band" });
    }
    traces.push({ x: c.x, y: c.y, mode: "lines", line: { color }, name: label });
    traces.push({ x: c.point_x, y: c.point_y, mode: "markers", marker: { color, size: c.trials.map((t) => (marked(state, t) ? 14 : 7)) },
      name: label + " points", text: c.trials, hovertemplate: "%{text}<br>%{x}: %{y}<extra></extra>" });
    const E = (f.params || []).find((p) => p.name === "E");
    if (E) {
      traces.push({ x: [c.x[0], c.x[c.x.length - 1]], y: [E.value, E.value], mode: "lines", line: { color, dash: "dash", width: 1 }, name: label + " asymptote E" });
      info.push(`${label}: E = ${num(E.value)}${E.lo != null ? ` (${num(E.lo)}, ${num(E.hi)})` : ""}` +
        (f.params || []).filter((p) => p.name !== "E").map((p) => `, ${p.name} = ${num(p.value)}`).join(""));
    }
    if (c.error) info.push(`${label}: ${c.error}`);
  });
  if (!traces.length) {
    $("#fitinfo").textContent = (r.fits || []).map((f) => f.error).filter(Boolean).join("; ") || "no fit yet";
    return;
  }
  // Two recipes: where their curves cross, with each crossing's
  // bootstrap interval, over the range the curves are drawn on.
  const drawn = (r.curves || []).filter((c) => c.x && c.x.length);
  let cross = null;
  if (r.curves && r.curves.length === 2 && drawn.length === 2) {
    cross = await crossover(state, results, drawn);
    if (!$("#fit")) return;
    traces.push(...crossTraces(cross, drawn));
    info.push(crossInfo(cross, r.group));
  }
  Plotly.react("fit", traces, {
    margin: { l: 50, r: 10, t: 30, b: 40 }, legend: { orientation: "h", y: 1.12 },
    xaxis: { title: r.x, type: "log" }, yaxis: { title: st.objective, type: "log" },
  }, { displayModeBar: false, responsive: true });
  pickable(state, $("#fit"));
  $("#fitinfo").textContent = info.join("; ");
}

// crossover asks where the two recipes' curves cross between the ends of
// the grid they are drawn on; it asks again only when results changed
// (the server refits and bootstraps both). An error is returned as
// {error}.
async function crossover(state, results, curves) {
  if (state.cross && state.cross.results === results) return state.cross.reply;
  const lo = Math.min(...curves.map((c) => c.x[0])), hi = Math.max(...curves.map((c) => c.x[c.x.length - 1]));
  let reply;
  try {
    reply = await api(`/crossover?${new URLSearchParams({ study: state.name, lo, hi })}`);
  } catch (e) {
    reply = { error: e.message };
  }
  state.cross = { results, reply };
  return reply;
}

// interp reads curve c at x, interpolating linearly in log-log.
function interp(c, x) {
  let i = 1;
  while (i < c.x.length - 1 && c.x[i] < x) i++;
  const [x0, x1, y0, y1] = [c.x[i - 1], c.x[i], c.y[i - 1], c.y[i]];
  const f = (Math.log(x) - Math.log(x0)) / (Math.log(x1) - Math.log(x0));
  return Math.exp(Math.log(y0) + f * (Math.log(y1) - Math.log(y0)));
}

// crossTraces draws each crossing as a diamond on the first curve, its
// interval as a shaded span over the height of the points.
function crossTraces(cross, curves) {
  if (cross.error || !cross.roots.length) return [];
  const ys = curves.flatMap((c) => c.point_y).filter((v) => v > 0);
  const ylo = Math.min(...ys) / 1.1, yhi = Math.max(...ys) * 1.1;
  const out = [];
  cross.roots.forEach((rt, k) => {
    if (rt.lo == null) return;
    out.push({ x: [rt.lo, rt.hi, rt.hi, rt.lo, rt.lo], y: [ylo, ylo, yhi, yhi, ylo], mode: "lines", fill: "toself",
      fillcolor: "#d6454522", line: { width: 0 }, hoverinfo: "skip", showlegend: false, name: "crossover 95% interval" });
  });
  out.push({ x: cross.roots.map((rt) => rt.x), y: cross.roots.map((rt) => interp(curves[0], rt.x)), mode: "markers", name: "crossover",
    marker: { symbol: "diamond", size: 12, color: "#d64545", line: { color: "#fff", width: 1 } },
    hovertemplate: "crossover<br>%{x}<extra></extra>" });
  return out;
}

// crossInfo says where the recipes cross, how sure the bootstrap is of
// it, and whether the gap between them ever leaves the seed noise.
function crossInfo(cross, group) {
  if (cross.error) return `crossover: ${cross.error}`;
  const [a, b] = cross.names.map((n) => (group ? `${group}=${n}` : n));
  let s = cross.roots.length
    ? `${a} and ${b} cross at ${cross.x} = ` + cross.roots.map((rt) => num(rt.x) +
      (rt.lo != null ? ` (95%: ${num(rt.lo)} to ${num(rt.hi)})` : "") + (rt.extrapolated ? ", extrapolated" : "")).join(", ")
    : `${a} and ${b} do not cross between ${num(cross.lo)} and ${num(cross.hi)}`;
  if (cross.p_count && cross.p_count.length) {
    s += ` (replicates with 0/1/2/3+ crossings: ${cross.p_count.map((p) => Math.round(100 * p) + "%").join("/")})`;
  }
  if (cross.within_noise) s += `; the gap between the curves (at most ${num(cross.max_gap)}) stays within the seed noise, so the crossing may be noise`;
  return s;
}

// repeats reports whether trials train over more than one number of
// epochs (tokens over unique tokens, or their epochs parameter): what the
// repeated-data plot is about. A measured value wins over a parameter, as
// on the server.
function repeats(trials) {
  const seen = new Set();
  const get = (t, k) => (t.result && t.result.metrics && t.result.metrics[k] != null ? t.result.metrics[k] : t.params && t.params[k]);
  for (const t of trials) {
    const u = get(t, "unique_tokens");
    if (!(u > 0)) continue;
    const d = get(t, "tokens"), e = d > 0 ? d / u : get(t, "epochs");
    if (e > 0) seen.add(+e.toPrecision(6));
    if (seen.size > 1) return true;
  }
  return false;
}

// epochs draws the repeated-data analysis of a study whose trials repeat
// a pool of unique tokens over more than one number of epochs: each
// (params, unique tokens) series of loss against epochs, the
// data-constrained law fitted to all of them, each series' best epoch
// count and where repeating starts to hurt. It asks
// again only when results changed.
async function epochs(state) {
  if (!window.Plotly) return; // drawn once it has loaded
  const all = [...state.trials.values()];
  const results = all.filter((t) => t.result).length;
  if (!results || results === state.epochsKey || !repeats(all)) return;
  state.epochsKey = results;
  let r;
  try {
    r = await api(`/studies/${encodeURIComponent(state.name)}/epochs`);
  } catch (e) {
    if ($("#epochsinfo")) { $("#epochs-card").hidden = false; $("#epochsinfo").textContent = e.message; }
    return;
  }
  if (!$("#epochs")) return; // the view changed while we waited
  $("#epochs-card").hidden = false;
  const colors = ["#2f6fec", "#e8a33d", "#1f9d55", "#9b51e0", "#d64545", "#00a3a3"];
  const traces = [], info = [];
  r.series.forEach((s, i) => {
    const color = colors[i % colors.length];
    const label = `N=${sci(s.params)}, U=${sci(s.unique_tokens)}`;
    traces.push({ x: s.epochs, y: s.loss, mode: "markers", marker: { color, size: 7 }, name: label,
      customdata: s.seeds, hovertemplate: `${label}<br>%{x} epochs: %{y} (mean of %{customdata} seeds)<extra></extra>` });
    if (s.fit_epochs) {
      traces.push({ x: s.fit_epochs, y: s.fit_loss, mode: "lines", line: { color, width: 1.5 }, name: label + " fit", showlegend: false, hoverinfo: "skip" });
    }
    const at = (e) => s.loss[s.epochs.indexOf(e)];
    traces.push({ x: [s.best_epochs], y: [at(s.best_epochs)], mode: "markers", name: label + " best", showlegend: false,
      marker: { symbol: "circle-open", size: 16, color, line: { width: 2 } }, hovertemplate: `${label}: best at %{x} epochs<extra></extra>` });
    if (s.degrades_at != null) {
      traces.push({ x: [s.degrades_at], y: [at(s.degrades_at)], mode: "markers", name: label + " degrades", showlegend: false,
        marker: { symbol: "x-thin-open", size: 16, color, line: { width: 3 } }, hovertemplate: `${label}: repetition hurts from %{x} epochs<extra></extra>` });
    }
    info.push(`${label}: best at ${num(s.best_epochs)} epochs, ` + (s.degrades_at != null ? `worse from ${num(s.degrades_at)}` : "no degradation seen"));
  });
  Plotly.react("epochs", traces, {
    margin: { l: 50, r: 10, t: 30, b: 40 }, legend: { orientation: "h", y: 1.12 },
    xaxis: { title: "epochs", type: "log" }, yaxis: { title: state.study ? state.study.objective : "loss" },
  }, { displayModeBar: false, responsive: true });
  const rd = r.fit && r.fit.RD_star;
  $("#epochsinfo").textContent = `seed noise σ = ${num(r.sigma_seed)} (${r.sigma_source}), degradation beyond ${num(r.z)}σ. ` +
    (r.fit ? `Data-constrained fit: R_D* = ${num(rd)} (repeated tokens are worth 1/e of a fresh one after that many repeats). ` : `No data-constrained fit: ${r.fit_error}. `) +
    info.join("; ");
}
