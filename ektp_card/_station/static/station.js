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
