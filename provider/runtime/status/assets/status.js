// The status page reads fine without this script; with it, the current view refreshes in place every few seconds.
// Served from the runtime itself, so the page's CSP can forbid every inline and foreign script.
"use strict";
(function () {
  var view = document.getElementById("view");
  if (!view || !window.fetch) return;
  var every = Number(view.getAttribute("data-refresh-ms")) || 5000;
  var busy = false;
  function editing() {
    // Never swap the view under someone typing a filter or holding a select open.
    var a = document.activeElement;
    return !!a && view.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  function refresh() {
    if (busy || document.hidden || editing()) return;
    busy = true;
    fetch(location.pathname + location.search, {
      headers: { "x-status-fragment": "1" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(function (res) {
        // The session ended (logout elsewhere, expiry, restart): a full load shows the login form.
        if (res.status === 401) return location.reload();
        if (!res.ok) return;
        return res.text().then(function (html) {
          if (!editing()) view.innerHTML = html;
          view.setAttribute("data-refreshed", new Date().toISOString());
        });
      })
      .catch(function () {})
      .then(function () {
        busy = false;
      });
  }
  setInterval(refresh, every);
})();
