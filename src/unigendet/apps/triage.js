// The triage report: a summary, a sortable and filterable grid of verdicts, a detail view per image.
// Rows and run facts are JSON in the page; pictures are files beside it; nothing is fetched.
const $ = id => document.getElementById(id);
const rows = JSON.parse($("rows").textContent);
const about = JSON.parse($("about").textContent);
const KINDS = ["fake", "uncertain", "real", "unreadable"];
const kindOf = r => r.error ? "unreadable" : r.label;
const PAGE = 120;  // cards added at a time, as the grid is scrolled
const state = {kind: null, query: "", sort: "score", view: [], shown: 0, open: -1};

function summary() {
  const counts = Object.fromEntries(KINDS.map(k => [k, 0]));
  for (const r of rows) counts[kindOf(r)] = (counts[kindOf(r)] || 0) + 1;
  Object.assign(counts, about.counts || {});  // every row's verdict, when the page holds only some
  const total = KINDS.reduce((n, k) => n + counts[k], 0);
  const only = (about.only || []).length ? about.only : null;
  $("total").textContent = `${total} image${total === 1 ? "" : "s"}` +
    (only ? ` (this page holds the ${only.join(", ")} ones)` : "");
  const bar = $("kinds"); bar.textContent = "";
  for (const k of KINDS) {
    const b = document.createElement("button");
    b.className = `kind ${k}`; b.dataset.kind = k; b.setAttribute("aria-pressed", "false");
    b.innerHTML = `<span class="n"></span> <span class="k"></span>`;
    b.querySelector(".n").textContent = counts[k]; b.querySelector(".k").textContent = k;
    b.onclick = () => { state.kind = state.kind === k ? null : k; update(); };
    if (only && !only.includes(k)) { b.disabled = true; b.title = "not on this page (report --only)"; }
    bar.appendChild(b);
  }
  const facts = [
    ["detector", about.detector || "not recorded"],
    ["threshold", about.threshold == null ? "not recorded" : `p_fake above ${about.threshold.toFixed(3)} is called fake`],
    ["when", about.started || "not recorded"],
    ["how long", about.seconds == null ? "not recorded" :
      `${about.seconds.toFixed(1)} s (${(total / Math.max(about.seconds, 1e-9)).toFixed(1)} images/s)`],
    ["from", about.source || ""],
    ["explanations", about.explained ? "written (click an image)" : "not asked for (--explain writes them)"],
  ];
  const dl = $("facts"); dl.textContent = "";
  for (const [k, v] of facts) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v; dl.append(dt, dd);
  }
  const bad = rows.filter(r => r.error);
  $("unreadable").style.display = bad.length ? "" : "none";
  $("unreadable-n").textContent = `${bad.length} file${bad.length === 1 ? "" : "s"}`;
  if (bad.length <= 50) $("unreadable").open = true;
  const body = $("unreadable-rows"); body.textContent = "";
  for (const r of bad) {
    const tr = body.insertRow();
    tr.insertCell().textContent = r.path; tr.insertCell().textContent = r.error;
  }
}

function order(sort) {
  const idx = rows.map((_, i) => i);
  const byPath = (a, b) => rows[a].path < rows[b].path ? -1 : rows[a].path > rows[b].path ? 1 : 0;
  if (sort === "path") return idx.sort(byPath);
  const sign = sort === "score-asc" ? 1 : -1;
  return idx.sort((a, b) => {
    const pa = rows[a].p_fake, pb = rows[b].p_fake;
    if (pa == null || pb == null) return (pa == null) - (pb == null) || byPath(a, b);  // unreadable last
    return sign * (pa - pb) || byPath(a, b);
  });
}

function update() {
  const q = state.query.toLowerCase();
  state.view = order(state.sort).filter(i =>
    (!state.kind || kindOf(rows[i]) === state.kind) && (!q || rows[i].path.toLowerCase().includes(q)));
  for (const b of document.querySelectorAll("#kinds .kind")) b.setAttribute("aria-pressed", String(b.dataset.kind === state.kind));
  $("showing").textContent = `showing ${state.view.length} of ${rows.length}`;
  $("grid").textContent = ""; state.shown = 0;
  more();
}

function card(i) {
  const r = rows[i], k = kindOf(r);
  const fig = document.createElement("figure");
  fig.className = `card ${k}`; fig.dataset.i = i; fig.tabIndex = 0;
  if (r.thumb) {
    const img = document.createElement("img");
    img.loading = "lazy"; img.alt = ""; img.src = r.thumb; fig.appendChild(img);
  } else {
    const box = document.createElement("div"); box.className = "nopic";
    box.textContent = r.error ? "unreadable" : r.missing ? "no picture" : ""; fig.appendChild(box);
  }
  const cap = document.createElement("figcaption");
  cap.innerHTML = `<span class="v"></span> <b class="p"></b><div class="name"></div>`;
  cap.querySelector(".v").textContent = k;
  cap.querySelector(".p").textContent = r.p_fake == null ? "" : r.p_fake.toFixed(3);
  cap.querySelector(".name").textContent = r.path.split(/[\\/]/).pop();
  fig.title = r.error ? `${r.path}: ${r.error}` : r.path;
  fig.appendChild(cap);
  return fig;
}

function more() {
  const grid = $("grid"), end = Math.min(state.view.length, state.shown + PAGE);
  const frag = document.createDocumentFragment();
  for (let n = state.shown; n < end; n++) frag.appendChild(card(state.view[n]));
  grid.appendChild(frag); state.shown = end;
}

function openDetail(n) {
  if (n < 0 || n >= state.view.length) return;
  state.open = n;
  const r = rows[state.view[n]], k = kindOf(r);
  $("d-verdict").textContent = r.error ? "Unreadable" : VERDICT_NAMES[k] || k;
  $("d-verdict").className = k; $("d-verdict").dataset.label = k;
  $("d-path").textContent = r.path;
  $("d-prob").textContent = r.p_fake == null ? "" :
    `p(fake) = ${r.p_fake.toFixed(3)}` + (r.spread == null ? "" : `, spread of its crops ${r.spread.toFixed(3)}`);
  $("d-error").textContent = r.error ? `Could not be read: ${r.error}` : r.missing ? `No picture: ${r.missing}` : "";
  $("d-reasons").textContent = verdictReasons(r) ||
    (r.error ? "" : "No explanation was asked for: build the report with --explain to see why.");
  $("d-note").textContent = r.note || "";
  drawChart($("d-chart"), r.attribution);
  $("d-heatnote").style.display = r.heatmap ? "" : "none";
  const img = $("d-image"), heat = $("d-heat");
  heat.width = heat.height = 0;
  img.onload = () => drawHeat(heat, img, r.heatmap || []);
  // the preview, else the image itself where the browser can show it, else the thumbnail
  const sources = [r.preview, r.original, r.thumb].filter(Boolean);
  img.style.display = sources.length ? "" : "none";
  img.onerror = () => { sources.shift(); if (sources.length) img.src = sources[0]; else img.style.display = "none"; };
  if (sources.length) img.src = sources[0]; else img.removeAttribute("src");
  $("d-pos").textContent = `${n + 1} of ${state.view.length}`;
  if (!$("detail").open) $("detail").showModal();
}

summary();
update();
new IntersectionObserver(es => { if (es.some(e => e.isIntersecting) && state.shown < state.view.length) more(); },
  {rootMargin: "800px"}).observe($("sentinel"));
$("search").addEventListener("input", e => { state.query = e.target.value; update(); });
$("sort").addEventListener("change", e => { state.sort = e.target.value; update(); });
$("grid").addEventListener("click", e => {
  const fig = e.target.closest(".card");
  if (fig) openDetail(state.view.indexOf(Number(fig.dataset.i)));
});
$("grid").addEventListener("keydown", e => {
  const fig = e.target.closest(".card");
  if (fig && e.key === "Enter") openDetail(state.view.indexOf(Number(fig.dataset.i)));
});
$("d-prev").onclick = () => openDetail(state.open - 1);
$("d-next").onclick = () => openDetail(state.open + 1);
$("d-close").onclick = () => $("detail").close();
$("detail").addEventListener("keydown", e => {
  if (e.key === "ArrowLeft") openDetail(state.open - 1);
  if (e.key === "ArrowRight") openDetail(state.open + 1);
});
