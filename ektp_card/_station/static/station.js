// Live reader status: the page works without this; with it, the status line follows the reader.
"use strict";
(function () {
  const box = document.getElementById("reader");
  const line = document.getElementById("reader-status");
  if (!box || !line) { return; }
  function show(state) {
    let text;
    if (state.problem) {
      text = box.dataset.unavailable.replace("{why}", state.problem);
    } else if (state.busy) {
      text = box.dataset.busy;
    } else if (state.present) {
      text = box.dataset.present.replace("{card}", state.label);
    } else {
      text = box.dataset.empty;
    }
    line.textContent = text;
    line.className = state.present ? "present" : "empty";
  }
  function poll() {
    fetch(box.dataset.statusUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) { if (state) { show(state); } })
      .catch(function () { /* the station stopped: keep the last status */ })
      .finally(function () { window.setTimeout(poll, 1000); });
  }
  window.setTimeout(poll, 1000);
}());

// Live batch progress: counts, rate and the citizen in hand; the page reloads when the batch ends.
(function () {
  const box = document.getElementById("progress");
  if (!box || box.dataset.state !== "running") { return; }
  function fill(id, values) {
    const el = document.getElementById(id);
    if (!el) { return; }
    let text = el.dataset.template;
    Object.keys(values).forEach(function (k) { text = text.replace("{" + k + "}", String(values[k])); });
    el.textContent = text;
  }
  function poll() {
    fetch(box.dataset.progressUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { return; }
        if (p.state !== "running") { window.location.reload(); return; }
        const bar = document.getElementById("progress-bar");
        bar.max = p.total || 1;
        bar.value = p.done;
        fill("progress-count", { done: p.done, total: p.total });
        fill("progress-rate", { rate: p.cards_per_hour, eta: (p.eta_seconds === null ? "?" : p.eta_seconds + " s") });
        if (p.current) { fill("progress-current", { name: p.current }); }
        fill("progress-result", { issued: p.issued, skipped: p.skipped, rejected: p.rejected, spoiled: p.spoiled });
      })
      .catch(function () { /* the station stopped: the page shows the last progress */ })
      .finally(function () { window.setTimeout(poll, 700); });
  }
  window.setTimeout(poll, 700);
}());

// A running review: reload when it ends (the results are server-rendered).
(function () {
  const box = document.getElementById("audit");
  if (!box || box.dataset.state !== "running") { return; }
  function poll() {
    fetch(box.dataset.progressUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (p && p.state !== "running") { window.location.reload(); return; }
        if (p) {
          const line = document.getElementById("audit-state");
          if (line) { line.textContent = p.done + "/" + p.total + " " + (p.current || ""); }
        }
        window.setTimeout(poll, 500);
      })
      .catch(function () { window.setTimeout(poll, 1000); });
  }
  window.setTimeout(poll, 500);
}());
