"""The live view's one page (:mod:`enet.deploy.live`): inline CSS and JavaScript, no external asset.

The page opens ``/events`` (Server-Sent Events, with the page's own
``?token=``), draws each camera's newest JPEG on its canvas (decoded by
``createImageBitmap``, off the main thread; a camera's frame that arrives
while the previous one is still decoding replaces the waiting one, so a slow
browser skips frames rather than falls behind), writes the camera's numbers
beside it, and plots the class fractions of the last minute as stacked
areas (its own canvas code). It measures how late each frame is shown:
``shown_at - captured_at`` with the browser's clock; where that clock is off
from the server's (the smallest ``received_at - sent_at`` is over 20 ms or
below -5 ms), by that offset. "Shown" is when the frame is drawn on its
canvas; the screen shows it at its next refresh. ``window.enetLive`` holds what it measured for
tests and the benchmark (``enet.deploy.live_bench``).

:data:`CSP` allows exactly the inline script and style below (by hash), the
page's own origin for the stream, and ``data:``/``blob:`` images.
"""

from __future__ import annotations

import base64
import hashlib
import re

_STYLE = """
:root { color-scheme: dark; --bg:#111418; --panel:#1b2027; --text:#e6e6e6; --dim:#8c96a3; --warn:#f0a030; --bad:#e05050; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.35 system-ui, sans-serif; }
header { display:flex; flex-wrap:wrap; gap:0.4em 1.5em; align-items:baseline; padding:8px 14px; background:var(--panel); }
header h1 { font-size:16px; margin:0; }
#conn.ok { color:#6cc070; } #conn.down { color:var(--bad); }
#cams { display:grid; grid-template-columns:repeat(auto-fit, minmax(290px, 1fr)); gap:10px; padding:10px 14px; }
.cam { background:var(--panel); border-radius:6px; padding:6px; border:2px solid transparent; }
.cam.reconnecting { border-color:var(--warn); } .cam.ended { border-color:#555; }
.cam.reconnecting canvas, .cam.ended canvas, .cam.waiting canvas { opacity:0.35; }
.cam h2 { font-size:14px; margin:0 0 4px; display:flex; justify-content:space-between; }
.state { font-weight:normal; padding:0 6px; border-radius:3px; background:#2c6e3a; }
.reconnecting .state { background:var(--warn); color:#111; } .ended .state, .waiting .state { background:#555; }
.cam canvas { width:100%; height:auto; display:block; background:#000; aspect-ratio:4/3; }
.nums { display:grid; grid-template-columns:repeat(3, auto); gap:0 10px; margin-top:4px; font-variant-numeric:tabular-nums; }
.nums span { color:var(--dim); } .nums b { font-weight:600; color:var(--text); }
#classes { display:flex; flex-wrap:wrap; gap:10px 20px; padding:0 14px 14px; }
#chart { background:var(--panel); border-radius:6px; width:min(100%, 820px); height:auto; }
#side { min-width:220px; }
#legend { list-style:none; padding:0; margin:6px 0 0; columns:2; }
#legend li { white-space:nowrap; font-variant-numeric:tabular-nums; }
.sw { display:inline-block; width:11px; height:11px; margin-right:5px; border-radius:2px; vertical-align:-1px; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  const $ = (sel, el) => (el || document).querySelector(sel);
  const token = new URLSearchParams(location.search).get("token");
  const live = window.enetLive = {connected: false, hellos: 0, config: null, cams: [], samples: [], errors: 0,
                                  offset: null};
  const KEEP = 5000, WINDOW_S = 60, CHART_HZ = 4;
  let config = null, cams = [], history = [], offsets = [];
  const now = () => (performance.timeOrigin + performance.now()) / 1000;
  const fmt = (x, d) => (x === null || x === undefined || !isFinite(x)) ? "\u2013" : Number(x).toFixed(d);
  const pct = (xs, p) => { if (!xs.length) return NaN; const s = xs.slice().sort((a, b) => a - b);
                           return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
  const rgb = (c) => "rgb(" + (c[0] | 0) + "," + (c[1] | 0) + "," + (c[2] | 0) + ")";

  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls;
                                if (text !== undefined) e.textContent = text; return e; }

  function build(cfg) {
    config = live.config = cfg;
    const root = $("#cams"); root.textContent = "";
    cams = live.cams = cfg.cameras.map((name, i) => {
      const tile = el("section", "cam waiting"); tile.id = "cam-" + i; tile.dataset.camera = name;
      const h = el("h2"); h.append(el("span", "name", name), el("span", "state", "waiting"));
      const canvas = el("canvas"); canvas.width = 480; canvas.height = 360;
      const nums = el("div", "nums");
      for (const [k, label, tip] of [
          ["fps", "fps", "frames out per second (the pipeline's)"],
          ["p50", "p50 ms", "capture to result latency, median (the pipeline's)"],
          ["p95", "p95 ms", "capture to result latency, 95th percentile (the pipeline's)"],
          ["dropped", "dropped", "frames the pipeline dropped"], ["frames", "frames", "frames out"],
          ["screen", "screen ms", "capture to this screen, this frame (measured here)"]]) {
        const d = el("div"); d.title = tip; d.append(el("span", "", label + " "), el("b", k, "\u2013")); nums.append(d);
      }
      tile.append(h, canvas, nums); root.append(tile);
      return {name: name, tile: tile, canvas: canvas, ctx: canvas.getContext("2d"), state: "live",
              pending: null, busy: false, received: 0, shown: 0, seq: 0, lastSeq: 0, latencies: [],
              stats: {}, fractions: null, shownTimes: []};
    });
    const sel = $("#chart-cam"); sel.textContent = "";
    sel.append(el("option", "", "all cameras")); sel.options[0].value = "all";
    cfg.cameras.forEach((n, i) => { const o = el("option", "", n); o.value = String(i); sel.append(o); });
    const leg = $("#legend"); leg.textContent = "";
    cfg.classes.forEach((n, i) => { const li = el("li"); const sw = el("span", "sw");
      sw.style.background = rgb(cfg.palette[i]); li.append(sw, el("span", "cls", n), el("span", "frac", ""));
      leg.append(li); });
    history = [];
    cfg.states.forEach((s, i) => setState(i, s));
  }

  function setState(i, state) {
    const c = cams[i]; if (!c) return;
    c.state = state;
    c.tile.classList.toggle("reconnecting", state === "reconnecting");
    c.tile.classList.toggle("ended", state === "ended");
    c.tile.classList.toggle("waiting", state === "live" && c.shown === 0);
    $(".state", c.tile).textContent = (state === "live" && c.shown === 0) ? "waiting" : state;
  }

  function b64bytes(s) { const bin = atob(s); const n = bin.length; const out = new Uint8Array(n);
                         for (let i = 0; i < n; i++) out[i] = bin.charCodeAt(i); return out; }

  async function show(c) {
    c.busy = true;
    while (c.pending) {
      const m = c.pending; c.pending = null;
      try {
        const bmp = await createImageBitmap(new Blob([b64bytes(m.jpeg)], {type: "image/jpeg"}));
        if (c.canvas.width !== bmp.width || c.canvas.height !== bmp.height) {
          c.canvas.width = bmp.width; c.canvas.height = bmp.height; c.canvas.style.aspectRatio = "auto"; }
        c.ctx.drawImage(bmp, 0, 0); bmp.close();
      } catch (e) { live.errors++; continue; }
      const t = now();
      c.shown++; c.lastSeq = m.seq; c.stats = m.stats || {}; c.fractions = m.fractions;
      c.shownTimes.push(t); while (c.shownTimes.length && c.shownTimes[0] < t - 2) c.shownTimes.shift();
      const off = live.offset || 0;
      const lat = (t - off - m.captured_at) * 1000;
      c.latencies.push(lat); if (c.latencies.length > 200) c.latencies.shift();
      live.samples.push({cam: m.cam, seq: m.seq, captured_at: m.captured_at, encoded_at: m.encoded_at,
                         sent_at: m.sent_at, received_at: m.received_at, shown_at: t, latency_ms: lat});
      if (live.samples.length > KEEP) live.samples.splice(0, live.samples.length - KEEP);
      const tile = c.tile; tile.dataset.seq = String(m.seq);
      $(".fps", tile).textContent = fmt(c.stats.fps, 1);
      $(".p50", tile).textContent = fmt(c.stats.latency_p50_ms, 0);
      $(".p95", tile).textContent = fmt(c.stats.latency_p95_ms, 0);
      $(".dropped", tile).textContent = fmt(c.stats.dropped, 0);
      $(".frames", tile).textContent = fmt(c.stats.frames, 0);
      $(".screen", tile).textContent = fmt(lat, 0);
      if (c.shown === 1) setState(cams.indexOf(c), c.state);
    }
    c.busy = false;
  }

  function onMessage(ev) {
    const t = now();
    let m; try { m = JSON.parse(ev.data); } catch (e) { live.errors++; return; }
    if (m.type === "hello") {
      live.hellos++;
      if (!config || JSON.stringify(config.cameras) !== JSON.stringify(m.cameras) ||
          JSON.stringify(config.classes) !== JSON.stringify(m.classes)) build(m);
      else m.states.forEach((s, i) => setState(i, s));
      return;
    }
    if (m.type === "state") { setState(m.cam, m.state); return; }
    if (m.type !== "frame") return;
    const c = cams[m.cam]; if (!c) return;
    m.received_at = t; c.received++;
    offsets.push(t - m.sent_at); if (offsets.length > 100) offsets.shift();
    const lo = Math.min.apply(null, offsets);
    live.offset = (lo > 0.02 || lo < -0.005) ? lo : 0;  // the clocks differ: correct by the smallest transit
    c.pending = m;
    if (!c.busy) show(c);
  }

  function sample() {
    if (!config) return;
    const t = now(), row = cams.map((c) => c.state === "live" && c.fractions ? c.fractions.slice() : null);
    history.push({t: t, rows: row});
    while (history.length && history[0].t < t - WINDOW_S) history.shift();
    const sel = $("#chart-cam").value;
    const series = history.map((h) => pick(h.rows, sel));
    draw(series, history.map((h) => h.t), t);
    const cur = series.length ? series[series.length - 1] : null;
    document.querySelectorAll("#legend li").forEach((li, i) => {
      $(".frac", li).textContent = cur && cur[i] !== null && cur[i] !== undefined ? " " + fmt(100 * cur[i], 1) + "%" : ""; });
    const all = [].concat.apply([], cams.map((c) => c.latencies));
    $("#screen").textContent = all.length ? "frame to screen p50 " + fmt(pct(all, 0.5), 0) + " ms, p95 " +
      fmt(pct(all, 0.95), 0) + " ms" : "frame to screen \u2013";
    live.screen_p50_ms = pct(all, 0.5); live.screen_p95_ms = pct(all, 0.95);
    cams.forEach((c) => { c.fps_shown = c.shownTimes.length > 1 ? (c.shownTimes.length - 1) /
      (c.shownTimes[c.shownTimes.length - 1] - c.shownTimes[0]) : 0; });
    $("#clock").textContent = live.offset ? "browser clock off by " + fmt(live.offset * 1000, 0) + " ms (corrected)" : "";
  }

  function pick(rows, sel) {
    if (sel !== "all") return rows[Number(sel)] || null;
    const got = rows.filter((r) => r); if (!got.length) return null;
    return got[0].map((_, k) => got.reduce((s, r) => s + (r[k] || 0), 0) / got.length);
  }

  function draw(series, times, t) {
    const cv = $("#chart"), g = cv.getContext("2d"), W = cv.width, H = cv.height, L = 40, R = 8, T = 8, B = 20;
    g.clearRect(0, 0, W, H);
    g.fillStyle = "#8c96a3"; g.font = "11px system-ui, sans-serif"; g.strokeStyle = "#333a44";
    for (const y of [0, 0.25, 0.5, 0.75, 1]) { const py = T + (1 - y) * (H - T - B);
      g.beginPath(); g.moveTo(L, py); g.lineTo(W - R, py); g.stroke(); g.fillText((y * 100) + "%", 4, py + 4); }
    // the x axis spans the history kept, 10 s to a minute
    const span = Math.min(WINDOW_S, Math.max(10, times.length ? Math.ceil(t - times[0]) : 10));
    g.fillText("-" + span + " s", L, H - 5); g.fillText("now", W - R - 22, H - 5);
    const xs = times.map((tt) => L + (1 - (t - tt) / span) * (W - L - R));
    if (!config) return;
    const n = config.classes.length, base = series.map(() => 0);
    for (let k = 0; k < n; k++) {
      g.fillStyle = rgb(config.palette[k]); g.beginPath(); let open = false;
      const top = [];
      for (let i = 0; i < series.length; i++) {
        const s = series[i]; if (!s) { if (open) { closeRun(g, xs, base, top, H, T, B); open = false; top.length = 0; } continue; }
        const y0 = base[i], y1 = y0 + (s[k] || 0); top.push([i, y0, y1]); base[i] = y1; open = true;
      }
      if (open) closeRun(g, xs, base, top, H, T, B);
    }
  }

  function closeRun(g, xs, base, top, H, T, B) {
    const Y = (v) => T + (1 - Math.min(1, v)) * (H - T - B);
    g.beginPath(); g.moveTo(xs[top[0][0]], Y(top[0][1]));
    for (const [i, , y1] of top) g.lineTo(xs[i], Y(y1));
    for (let j = top.length - 1; j >= 0; j--) g.lineTo(xs[top[j][0]], Y(top[j][1]));
    g.closePath(); g.fill();
  }

  function connect() {
    const es = new EventSource("/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
    es.onopen = () => { live.connected = true; $("#conn").textContent = "connected"; $("#conn").className = "ok"; };
    es.onerror = () => { live.connected = false; $("#conn").textContent = "disconnected, retrying";
                         $("#conn").className = "down"; };
    es.onmessage = onMessage;
  }
  $("#chart-cam").addEventListener("change", sample);
  setInterval(sample, 1000 / CHART_HZ);
  connect();
})();
"""

_BODY = """<header><h1>enet-rt live</h1><span id="conn">connecting</span><span id="screen"></span>
<span id="clock"></span></header>
<main id="cams"></main>
<section id="classes"><canvas id="chart" width="820" height="220"></canvas>
<div id="side"><label>class fractions of <select id="chart-cam"></select></label><ul id="legend"></ul></div></section>
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


PAGE = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>enet-rt live</title><link rel=\"icon\" href=\"data:,\">"
        f"<style>{_STYLE}</style></head><body>\n{_BODY}<script>{_SCRIPT}</script></body></html>\n")

#: Only the page's own inline script and style run; the stream comes from the page's origin.
CSP = re.sub(r"\s+", " ", f"""default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)};
    img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'""")
