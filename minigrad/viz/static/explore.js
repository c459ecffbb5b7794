// minigrad attention explorer: reads the data embedded in this page (no network) and draws
// the model view, the head view, the loss picker and "why this score".
"use strict";
(async function () {
  const meta = JSON.parse(document.getElementById("meta").textContent);
  const raw = Uint8Array.from(atob(document.getElementById("blob").textContent.trim()),
    (c) => c.charCodeAt(0));
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
  const buf = await new Response(stream).arrayBuffer();

  // ----- data ------------------------------------------------------------------------------
  function half(h) {  // one float16 bit pattern -> number
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * f * Math.pow(2, -24);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * (1 + f / 1024) * Math.pow(2, e - 15);
  }
  function arr(entry) {  // an entry of the manifest -> {a: Float64Array, s: shape}
    const n = entry.s.reduce((x, y) => x * y, 1);
    let a;
    if (entry.t === "f16") {
      const u = new Uint16Array(buf, entry.o, n), k = entry.k;
      a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = half(u[i]) * k;
    } else {
      a = Float64Array.from(new Float32Array(buf, entry.o, n));
    }
    return { a, s: entry.s };
  }
  const blocks = meta.blocks.map((b) => ({
    ...b, q: arr(b.q), k: arr(b.k), v: arr(b.v), Sx: arr(b.scores), Px: arr(b.probs),
  }));
  const labels = meta.labels;
  const lastLabels = labels[labels.length - 1];

  // per head slices, row-major: m(x, h) -> (rows, cols) view of head h
  function head(x, h) {
    const [, r, c] = x.s;
    return { a: x.a.subarray(h * r * c, (h + 1) * r * c), r, c };
  }
  function dOut(choice, bi, h) {  // dL/dO (T, d) of one head, dense
    const b = blocks[bi], g = meta.grads[choice][bi];
    const out = new Float64Array(b.T * b.d);
    if (!g.data.a) g.data = arr(g.data);
    const nr = g.rows.length;
    for (let j = 0; j < nr; j++) {
      const t = g.rows[j];
      for (let i = 0; i < b.d; i++) out[t * b.d + i] = g.data.a[(h * nr + j) * b.d + i];
    }
    return out;
  }
  const cache = new Map();
  // Attention's backward for one head and one loss, from dL/dO (see the page's notes).
  function grads(choice, bi, h) {
    const key = choice + "/" + bi + "/" + h;
    if (cache.has(key)) return cache.get(key);
    const b = blocks[bi], T = b.T, S = b.S, d = b.d, sc = 1 / Math.sqrt(d);
    const dO = dOut(choice, bi, h), P = head(b.Px, h).a, q = head(b.q, h).a;
    const k = head(b.k, h).a, v = head(b.v, h).a;
    const dP = new Float64Array(T * S), dS = new Float64Array(T * S), rs = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      let r = 0;
      for (let s = 0; s < S; s++) {
        let x = 0;
        for (let i = 0; i < d; i++) x += dO[t * d + i] * v[s * d + i];
        dP[t * S + s] = x;
        r += x * P[t * S + s];
      }
      rs[t] = r;
      for (let s = 0; s < S; s++) dS[t * S + s] = P[t * S + s] * (dP[t * S + s] - r);
    }
    const dq = new Float64Array(T * d), dk = new Float64Array(S * d), dv = new Float64Array(S * d);
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < S; s++) {
        const g = dS[t * S + s] * sc, p = P[t * S + s];
        for (let i = 0; i < d; i++) {
          dq[t * d + i] += g * k[s * d + i];
          dk[s * d + i] += g * q[t * d + i];
          dv[s * d + i] += p * dO[t * d + i];
        }
      }
    }
    const norms = (x, n) => Array.from({ length: n }, (_, j) => {
      let z = 0;
      for (let i = 0; i < d; i++) z += x[j * d + i] * x[j * d + i];
      return Math.sqrt(z);
    });
    const res = { dO, dP, dS, rowsum: rs, dq, dk, dv, ndq: norms(dq, T), ndk: norms(dk, S),
      ndv: norms(dv, S) };
    cache.set(key, res);
    return res;
  }
  function matrix(view, choice, bi, h) {  // the (T, S) values a view shows
    const b = blocks[bi];
    if (view === "P") return head(b.Px, h).a;
    if (view === "S") return head(b.Sx, h).a;
    return grads(choice, bi, h)[view];
  }

  // ----- formatting and colour -------------------------------------------------------------
  function fmt(x, p = 4) {
    if (x === -Infinity) return "−∞";
    if (x === 0) return "0";
    const ax = Math.abs(x);
    if (ax >= 1e-3 && ax < 1e4) return (+x.toPrecision(p)).toString().replace("-", "−");
    return x.toExponential(p - 1).replace("-", "−");
  }
  function lerp(stops, u) {
    u = Math.max(0, Math.min(1, u));
    const n = stops.length - 1, i = Math.min(n - 1, Math.floor(u * n)), f = u * n - i;
    const a = stops[i], c = stops[i + 1];
    return [0, 1, 2].map((j) => Math.round(a[j] + (c[j] - a[j]) * f));
  }
  const SEQ = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
  const DIV = [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]];
  function scale(view, m) {  // colour scale of a matrix: {lo, hi, div}
    let lo = Infinity, hi = -Infinity;
    for (const x of m) if (isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    if (!isFinite(lo)) { lo = 0; hi = 0; }
    if (view === "P") return { lo: 0, hi: Math.max(hi, 1e-12), div: false };
    const a = Math.max(Math.abs(lo), Math.abs(hi), 1e-30);
    return { lo: -a, hi: a, div: true };
  }
  // Square-root colour scales (signed for the diverging ones), so that the many small
  // weights and gradients stay visible next to the few large ones; the legend shows it.
  function colour(x, sc) {
    const r = Math.sqrt(Math.min(1, Math.abs(x) / sc.hi));
    return lerp(sc.div ? DIV : SEQ, sc.div ? 0.5 + 0.5 * Math.sign(x) * r : r);
  }
  let hatch = null;
  function hatchPattern(ctx) {
    if (hatch) return hatch;
    const c = document.createElement("canvas");
    c.width = c.height = 6;
    const g = c.getContext("2d");
    g.fillStyle = "#e4e4e4"; g.fillRect(0, 0, 6, 6);
    g.strokeStyle = "#b0b0b0"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(0, 6); g.lineTo(6, 0); g.stroke();
    hatch = ctx.createPattern(c, "repeat");
    return hatch;
  }
  const isMasked = (b, h, t, s) => head(b.Sx, h).a[t * b.S + s] === -Infinity;

  // ----- page skeleton ---------------------------------------------------------------------
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid != null) e.append(kid);
    return e;
  };
  const VIEWS = {
    P: ["P", "attention weights P = softmax(S), each row sums to 1"],
    S: ["S", "scaled, masked scores S = q·kᵀ/√d (−∞ where masked)"],
    dP: ["dL/dP", "dL/dP = dL/dO · vᵀ: how the loss changes with each weight"],
    dS: ["dL/dS", "dL/dS = P ⊙ (dL/dP − rowsum(dL/dP ⊙ P)): the softmax's backward"],
  };
  const state = { choice: 0, block: 0, head: 0, view: "P", cell: null };
  const app = document.getElementById("app");
  app.textContent = "";
  const lossInfo = el("div", { class: "lossinfo", id: "loss-info" });
  const picker = el("div", { class: "picker", id: "loss-picker" });
  const thumbs = el("div", { class: "thumbs", id: "model-view" });
  const tabs = el("div", { class: "tabs", id: "view-tabs" });
  const headTitle = el("h2", { id: "head-title" });
  const caption = el("p", { class: "caption", id: "view-caption" });
  const canvas = el("canvas", { id: "heatmap" });
  const legend = el("canvas", { id: "legend", width: 400, height: 34 });
  const maskNote = el("p", { class: "mask", id: "mask-note" });
  const bars = el("div", { class: "bars", id: "grad-bars" });
  const why = el("div", { class: "why", id: "why" });
  const tip = el("div", { class: "tip", id: "tip" });
  const gradNote = meta.grad_dtype === "float32" ? "float32" :
    "float16 × one float32 scale per loss and block: about 3 significant digits, to keep " +
    "the page small";
  app.append(
    el("header", {},
      el("h1", { text: "minigrad attention explorer" }),
      el("p", { class: "sub", text: meta.title }),
      el("p", { class: "note", text: "One forward and one backward pass, recorded by " +
        "minigrad.viz.explore. Stored: q, k, v, S and P of every head (float32) and, for each " +
        "loss below, dL/dO at every attention output (" + gradNote + "). dL/dP, dL/dS, dL/dq, " +
        "dL/dk and dL/dv are computed in this page from them by attention's backward." })),
    el("section", { class: "losses" },
      el("h2", { text: "Loss picker: which loss is backpropagated" }),
      el("p", { class: "caption", text: "One bar per position: its next-character loss " +
        "−log p(next | text so far). Click a bar, or mean, to backpropagate that loss; every " +
        "gradient view follows." }), picker, lossInfo),
    el("main", {},
      el("section", { class: "model" },
        el("h2", { text: "Model view: every block × head" }),
        el("p", { class: "caption", text: "Each thumbnail shows the selected quantity of one " +
          "head (each scaled to its own range). Click one to open it." }), thumbs),
      el("section", { class: "head" }, headTitle, tabs, caption,
        el("div", { class: "heatwrap" }, canvas, tip), legend, maskNote, bars),
      el("section", { class: "whybox" }, el("h2", { text: "Why this score" }), why)));

  // ----- loss picker -----------------------------------------------------------------------
  function lossLabel(c) {
    if (c === 0) return "the mean of the next-token losses (" + fmt(meta.mean_loss) + ")";
    const t = meta.choices[c];
    return "position " + t + " '" + lastLabels[t] + "' predicting '" + meta.target_labels[t] +
      "': −log p = " + fmt(meta.losses[t]);
  }
  function buildPicker() {
    const finite = meta.losses.filter((x) => x != null);
    const top = Math.max(...finite, 1e-9);
    picker.append(el("button", { class: "mean", "data-choice": 0, title: lossLabel(0),
      onclick: () => setLoss(0) }, el("span", { class: "bar", style: "height:" +
      Math.round(40 * meta.mean_loss / top) + "px" }), el("span", { class: "ch", text: "mean" })));
    for (let c = 1; c < meta.choices.length; c++) {
      const t = meta.choices[c], x = meta.losses[t];
      picker.append(el("button", { "data-choice": c, title: lossLabel(c),
        onclick: () => setLoss(c) }, el("span", { class: "bar", style: "height:" +
        Math.max(1, Math.round(40 * x / top)) + "px" }),
        el("span", { class: "ch", text: lastLabels[t] })));
    }
  }

  // ----- model view ------------------------------------------------------------------------
  function drawMatrix(cv, m, b, h, view, cell) {
    const T = b.T, S = b.S, ctx = cv.getContext("2d"), sc = scale(view, m);
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < S; s++) {
        if (isMasked(b, h, t, s)) ctx.fillStyle = hatchPattern(ctx);
        else ctx.fillStyle = "rgb(" + colour(m[t * S + s], sc).join(",") + ")";
        ctx.fillRect(cell.x0 + s * cell.w, cell.y0 + t * cell.w, cell.w, cell.w);
      }
    }
    return sc;
  }
  function buildThumbs() {
    blocks.forEach((b, bi) => {
      const row = el("div", { class: "row" }, el("div", { class: "bname",
        text: "block " + bi + (b.kind === "cross" ? " (cross)" : "") + "\n" + b.name }));
      for (let h = 0; h < b.heads; h++) {
        const w = Math.max(1, Math.floor(72 / Math.max(b.T, b.S)));
        const cv = el("canvas", { width: b.S * w, height: b.T * w });
        row.append(el("div", { class: "thumb", "data-block": bi, "data-head": h,
          title: "block " + bi + " head " + h, onclick: () => select(bi, h) },
          cv, el("span", { text: "head " + h })));
      }
      thumbs.append(row);
    });
  }
  function drawThumbs() {
    for (const d of thumbs.querySelectorAll(".thumb")) {
      const bi = +d.dataset.block, h = +d.dataset.head, b = blocks[bi];
      const cv = d.querySelector("canvas"), w = cv.width / b.S;
      drawMatrix(cv, matrix(state.view, state.choice, bi, h), b, h, state.view,
        { x0: 0, y0: 0, w });
      d.classList.toggle("sel", bi === state.block && h === state.head);
    }
  }

  // ----- head view -------------------------------------------------------------------------
  let geom = null;
  function buildTabs() {
    for (const [key, [name]] of Object.entries(VIEWS)) {
      tabs.append(el("button", { "data-view": key, text: name, onclick: () => setView(key) }));
    }
  }
  function drawHead() {
    const b = blocks[state.block], h = state.head, T = b.T, S = b.S;
    const ql = labels[b.qside], kl = labels[b.kside];
    headTitle.textContent = "Head view: block " + state.block + " (" + b.name + ", " + b.kind +
      "-attention), head " + h;
    for (const t of tabs.children) t.classList.toggle("sel", t.dataset.view === state.view);
    caption.textContent = VIEWS[state.view][1] + (state.view.startsWith("d") ?
      "; loss: " + lossLabel(state.choice) + "." : ".") + " Rows: queries t" +
      (b.kind === "cross" ? " (target)" : "") + "; columns: keys s" +
      (b.kind === "cross" ? " (source)" : "") + ". Colour: square root of the value's size " +
      "(see the legend). Hover for exact values, click a cell (then arrow keys move it).";
    const w = Math.max(8, Math.min(28, Math.floor(600 / Math.max(T, S))));
    const pad = 34, dpr = window.devicePixelRatio || 1;
    geom = { x0: pad, y0: pad, w };
    canvas.dataset.pad = pad; canvas.dataset.cell = w;
    canvas.width = (pad + S * w + 4) * dpr; canvas.height = (pad + T * w + 4) * dpr;
    canvas.style.width = (pad + S * w + 4) + "px"; canvas.style.height = (pad + T * w + 4) + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const m = matrix(state.view, state.choice, state.block, h);
    const sc = drawMatrix(canvas, m, b, h, state.view, geom);
    ctx.fillStyle = "#333"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.font = Math.min(13, w) + "px ui-monospace, monospace";
    for (let s = 0; s < S; s++) ctx.fillText(kl[s], pad + s * w + w / 2, pad - 8);
    ctx.textAlign = "right";
    for (let t = 0; t < T; t++) ctx.fillText(ql[t], pad - 4, pad + t * w + w / 2);
    ctx.font = "10px sans-serif"; ctx.textAlign = "left"; ctx.fillStyle = "#777";
    ctx.fillText("keys s →", 2, 8);
    if (state.cell) {
      const [t, s] = state.cell;
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
      ctx.strokeRect(pad + s * w, pad + t * w, w, w);
    }
    drawLegend(sc);
    drawMaskNote(b, h);
    drawBars(b, h);
  }
  function drawLegend(sc) {
    const ctx = legend.getContext("2d"), W = legend.width;
    ctx.clearRect(0, 0, W, legend.height);
    for (let x = 0; x < W - 80; x++) {
      const u = x / (W - 81);
      ctx.fillStyle = "rgb(" + lerp(sc.div ? DIV : SEQ, u).join(",") + ")";
      ctx.fillRect(x, 0, 1, 14);
    }
    ctx.fillStyle = hatchPattern(ctx); ctx.fillRect(W - 70, 0, 14, 14);
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textBaseline = "top";
    const ticks = sc.div ? [[0, sc.lo], [0.25, sc.lo / 4], [0.5, 0], [0.75, sc.hi / 4],
      [1, sc.hi]] : [[0, 0], [0.5, sc.hi / 4], [1, sc.hi]];
    for (const [u, x] of ticks) {
      ctx.textAlign = u === 0 ? "left" : u === 1 ? "right" : "center";
      ctx.fillText(fmt(x, 3), u * (W - 81), 18);
    }
    ctx.textAlign = "left"; ctx.fillText("masked", W - 52, 2);
    legend.dataset.lo = sc.lo; legend.dataset.hi = sc.hi;
  }
  function drawMaskNote(b, h) {
    let n = 0, worst = 0;
    const g = grads(state.choice, state.block, h);
    for (let t = 0; t < b.T; t++) {
      for (let s = 0; s < b.S; s++) {
        if (isMasked(b, h, t, s)) { n++; worst = Math.max(worst, Math.abs(g.dS[t * b.S + s])); }
      }
    }
    if (!n) { maskNote.textContent = "No cell of this head is masked."; return; }
    const py = meta.masked_grad[state.choice][state.block];
    maskNote.textContent = n + " of " + b.T * b.S + " cells are masked (hatched: S = −∞, " +
      "P = 0). Their gradient is exactly zero: max |dL/dS| over them = " + fmt(worst) +
      " here" + (py == null ? "" : ", and Python's backward gave max |dL/d score| = " +
      fmt(py) + " over the masked cells of this block") + "." + (state.view === "dP" ?
      " dL/dP itself need not be 0 there (hover a hatched cell): P = 0 multiplies it away " +
      "in dL/dS = P ⊙ (dL/dP − rowsum)." : "");
    maskNote.dataset.maskedCells = n;
    maskNote.dataset.maxMaskedGrad = worst;
    maskNote.dataset.pythonMaxMaskedGrad = py == null ? "" : py;
  }
  function drawBars(b, h) {
    const g = grads(state.choice, state.block, h);
    bars.textContent = "";
    bars.append(el("p", { class: "caption", text: "Per position, for " + lossLabel(state.choice) +
      ": |dL/dq_t| (queries), |dL/dk_s| and |dL/dv_s| (keys and values)." }));
    const rows = [["|dL/dq|", g.ndq, labels[b.qside], "ndq"],
      ["|dL/dk|", g.ndk, labels[b.kside], "ndk"], ["|dL/dv|", g.ndv, labels[b.kside], "ndv"]];
    for (const [name, xs, lab, key] of rows) {
      const top = Math.max(...xs, 1e-30);
      const row = el("div", { class: "barrow", "data-key": key }, el("span", { class: "bl",
        text: name }));
      xs.forEach((x, i) => row.append(el("span", { class: "b", "data-value": x,
        title: lab[i] + " (" + i + "): " + x.toPrecision(7) }, el("i", { style: "height:" +
        Math.round(30 * x / top) + "px" }), el("em", { text: lab[i] }))));
      bars.append(row);
    }
  }
  function cellAt(ev) {
    const r = canvas.getBoundingClientRect(), b = blocks[state.block];
    const s = Math.floor((ev.clientX - r.left - geom.x0) / geom.w);
    const t = Math.floor((ev.clientY - r.top - geom.y0) / geom.w);
    return t >= 0 && t < b.T && s >= 0 && s < b.S ? [t, s] : null;
  }
  canvas.addEventListener("mousemove", (ev) => {
    const c = cellAt(ev);
    if (!c) { tip.style.display = "none"; return; }
    const [t, s] = c, b = blocks[state.block], h = state.head;
    const m = matrix(state.view, state.choice, state.block, h);
    const x = m[t * b.S + s];
    tip.textContent = "query " + t + " '" + labels[b.qside][t] + "' → key " + s + " '" +
      labels[b.kside][s] + "': " + VIEWS[state.view][0] + " = " +
      (x === -Infinity ? "−∞" : x.toPrecision(7)) + (isMasked(b, h, t, s) ? " (masked)" : "");
    const r = canvas.getBoundingClientRect();
    tip.style.left = (ev.clientX - r.left + 14) + "px";
    tip.style.top = (ev.clientY - r.top + 14) + "px";
    tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("click", (ev) => { const c = cellAt(ev); if (c) setCell(c[0], c[1]); });
  // Arrow keys move the selected cell.
  document.addEventListener("keydown", (ev) => {
    const step = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (!state.cell || !step[ev.key]) return;
    const b = blocks[state.block], [dt, ds] = step[ev.key];
    const t = Math.max(0, Math.min(b.T - 1, state.cell[0] + dt));
    const s = Math.max(0, Math.min(b.S - 1, state.cell[1] + ds));
    ev.preventDefault();
    setCell(t, s);
  });

  // ----- why this score --------------------------------------------------------------------
  const num = (key, x) => el("span", { class: "num", "data-key": key, "data-value": x,
    title: String(x), text: fmt(x) });
  // A table of a[i], b[i] and a[i] b[i] with a bar per product; returns [table, sum].
  function dims(a, b, na, nb, ka, kb) {
    const tbl = el("table", { class: "dims" }, el("tr", {}, el("th", { text: "i" }),
      el("th", { text: na }), el("th", { text: nb }), el("th", { text: "product" }),
      el("th", {})));
    let sum = 0, top = 1e-30;
    for (let i = 0; i < a.length; i++) top = Math.max(top, Math.abs(a[i] * b[i]));
    for (let i = 0; i < a.length; i++) {
      const p = a[i] * b[i];
      sum += p;
      const wpx = Math.round(28 * Math.abs(p) / top);
      tbl.append(el("tr", {}, el("td", { text: i }), el("td", {}, num(ka, a[i])),
        el("td", {}, num(kb, b[i])), el("td", {}, num(ka + kb, p)), el("td", {},
          el("i", { class: p >= 0 ? "pos" : "neg", style: "width:" + wpx + "px" }))));
    }
    return [tbl, sum];
  }
  function drawWhy() {
    why.textContent = "";
    if (!state.cell) {
      why.append(el("p", { class: "caption", text: "Click a cell (t, s) of the head view." }));
      return;
    }
    const [t, s] = state.cell, b = blocks[state.block], h = state.head, d = b.d;
    const q = head(b.q, h).a.subarray(t * d, (t + 1) * d);
    const k = head(b.k, h).a.subarray(s * d, (s + 1) * d);
    const Srow = head(b.Sx, h).a.subarray(t * b.S, (t + 1) * b.S);
    const Prow = head(b.Px, h).a.subarray(t * b.S, (t + 1) * b.S);
    const ql = labels[b.qside][t], kl = labels[b.kside][s], masked = Srow[s] === -Infinity;
    why.append(el("p", { class: "cellname" }, "query t = " + t + " '" + ql + "', key s = " + s +
      " '" + kl + "' (block " + state.block + ", head " + h + ")"));
    // forward: q_t . k_s dimension by dimension
    const [tbl, dot] = dims(q, k, "q_t[i]", "k_s[i]", "q", "k");
    const score = dot / Math.sqrt(d);
    why.append(el("h3", { text: "Forward: the score" }), el("div", { class: "scroll" }, tbl),
      el("p", {}, "q_t · k_s = Σ_i q_t[i] k_s[i] = ", num("dot", dot), "; score = ",
        num("dot", dot), " / √" + d + " = ", num("score", score),
        masked ? "; masked: S[t, s] = −∞ (this key is hidden from this query)" :
          "; S[t, s] = ", masked ? null : num("S", Srow[s])));
    // the softmax row
    let mx = -Infinity, z = 0;
    for (const x of Srow) mx = Math.max(mx, x);
    for (const x of Srow) z += x === -Infinity ? 0 : Math.exp(x - mx);
    const rowEl = el("div", { class: "prow" }), pmax = Math.max(...Prow, 1e-30);
    Prow.forEach((p, j) => rowEl.append(el("span", { class: "b" + (j === s ? " sel" : "") +
      (Srow[j] === -Infinity ? " masked" : ""), title: labels[b.kside][j] + ": P = " +
      p.toPrecision(7) }, el("i", { style: "height:" + Math.round(40 * p / pmax) + "px" }),
      el("em", { text: labels[b.kside][j] }))));
    why.append(el("h3", { text: "Forward: the softmax row t (bars scaled to its largest P)" }),
      rowEl,
      el("p", {}, "P[t, s] = exp(S[t, s] − max) / Σ_j exp(S[t, j] − max) = ",
        masked ? "0 (exp(−∞) = 0)" : "exp(" + fmt(Srow[s] - mx) + ") / " + fmt(z) + " = ",
        num("P", Prow[s])));
    // backward
    const g = grads(state.choice, state.block, h);
    const dP = g.dP[t * b.S + s], r = g.rowsum[t], dS = g.dS[t * b.S + s];
    why.append(el("h3", { text: "Backward, for " + lossLabel(state.choice) }),
      el("p", {}, "dL/dP[t, s] = dL/dO_t · v_s = ", num("dP", dP)),
      el("details", {}, el("summary", { text: "dL/dO_t · v_s dimension by dimension" }),
        el("div", { class: "scroll" }, dims(g.dO.subarray(t * d, (t + 1) * d),
          head(b.v, h).a.subarray(s * d, (s + 1) * d), "dL/dO_t[i]", "v_s[i]", "dO", "v")[0])),
      el("p", {}, "rowsum(dL/dP ⊙ P)[t] = Σ_j dL/dP[t, j] P[t, j] = ", num("rowsum", r)),
      el("p", { class: "rule" }, "dL/dS[t, s] = P[t, s] × (dL/dP[t, s] − rowsum) = ",
        num("P", Prow[s]), " × (", num("dP", dP), " − ", num("rowsum", r), ") = ",
        num("P", Prow[s]), " × ", num("diff", dP - r), " = ", num("dS", dS)),
      masked ? el("p", { class: "mask" }, "This cell is masked: P[t, s] = 0, so dL/dS[t, s] " +
        "is exactly 0, whatever dL/dP is; no gradient reaches q_t or k_s through it.") :
        el("p", {}, "It sends dL/dS[t, s] · k_s / √d to dL/dq_t and dL/dS[t, s] · q_t / √d " +
          "to dL/dk_s."));
  }

  // ----- state changes ---------------------------------------------------------------------
  function render() {
    drawThumbs(); drawHead(); drawWhy();
    for (const bt of picker.children) bt.classList.toggle("sel", +bt.dataset.choice ===
      state.choice);
    lossInfo.textContent = "Backpropagating " + lossLabel(state.choice) + ".";
  }
  function select(bi, h) {
    state.block = bi; state.head = h;
    const b = blocks[bi];
    if (state.cell && (state.cell[0] >= b.T || state.cell[1] >= b.S)) state.cell = null;
    render();
  }
  function setView(v) { state.view = v; render(); }
  function setLoss(c) { state.choice = c; render(); }
  function setCell(t, s) { state.cell = [t, s]; render(); }

  buildPicker(); buildThumbs(); buildTabs(); render();
  // For tests and for the curious: the numbers behind every view, as plain arrays.
  window.explorer = {
    meta, state, select, setView, setLoss, setCell,
    values(name, choice, bi, h) {
      const b = blocks[bi];
      if (name === "q" || name === "k" || name === "v") return Array.from(head(b[name], h).a);
      if (name === "P" || name === "S") {
        return Array.from(matrix(name, choice, bi, h), (x) => (x === -Infinity ? null : x));
      }
      const g = grads(choice, bi, h);
      return Array.from(g[name]);
    },
  };
  document.body.dataset.ready = "1";
})().catch((e) => {
  document.getElementById("app").textContent = "explorer failed: " + e;
  throw e;
});
