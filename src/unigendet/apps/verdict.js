// How one verdict is drawn: shared by the web page and the triage report (inlined into both).
const VERDICT_NAMES = {fake: "Generated (fake)", real: "Real (a photo)", uncertain: "Uncertain"};

// The written reasons for a verdict: why it is uncertain, what moved it, where the evidence lies.
function verdictReasons(v) {
  return [v.uncertain && `Uncertain because ${v.uncertain}.`, v.explanation, v.evidence].filter(Boolean).join(" ");
}

// One bar per kind of evidence: right and red toward generated, left and green toward a photo.
function drawChart(chart, a) {
  chart.textContent = "";
  if (!a) return;
  const entries = Object.entries(a.contributions);
  const top = Math.max(1e-6, ...entries.map(([, v]) => Math.abs(v)));
  const head = document.createElement("div");
  head.innerHTML = "<small>What moved the verdict (&larr; photo &middot; generated &rarr;)" +
    (a.method === "occlusion" ? ", by taking each out of the image" : "") + "</small>";
  chart.appendChild(head);
  for (const [name, v] of entries) {
    const row = document.createElement("div"); row.className = "contrib";
    const w = 50 * Math.abs(v) / top;
    row.innerHTML = `<span class="name"></span><span class="axis"><span class="b"></span></span><span class="v"></span>`;
    row.querySelector(".name").textContent = name;
    row.querySelector(".v").textContent = (v >= 0 ? "+" : "") + v.toFixed(2);
    const bar = row.querySelector(".b");
    bar.style.width = `${w}%`; bar.style.left = v >= 0 ? "50%" : `${50 - w}%`;
    bar.style.background = v >= 0 ? "#c22" : "#2a2";
    chart.appendChild(row);
  }
}

// Each tile's p_fake over the image it was scored on, from green (a photo) to red (generated).
function drawHeat(canvas, img, grid) {
  canvas.width = img.clientWidth; canvas.height = img.clientHeight;
  const ctx = canvas.getContext("2d"); ctx.clearRect(0, 0, canvas.width, canvas.height);
  const n = (grid || []).length; if (!n) return;
  grid.forEach((row, i) => row.forEach((p, k) => {
    ctx.fillStyle = `rgba(${Math.round(255 * p)},${Math.round(255 * (1 - p))},0,0.35)`;
    ctx.fillRect(k * canvas.width / n, i * canvas.height / n, canvas.width / n, canvas.height / n);
  }));
}
