// newswatch console: the playground re-runs the query as it is typed (the form also works
// without this script, as a GET). Our own code, no library; loaded from /assets, never inline.
"use strict";
(function () {
  function onReady() {
    var form = document.getElementById("playground");
    if (!form) { return; }
    var q = document.getElementById("q");
    var against = document.getElementById("against");
    var results = document.getElementById("results");
    var timer = null;
    var seq = 0;
    function run() {
      var mine = ++seq;
      var params = new URLSearchParams();
      params.set("q", q.value);
      params.set("against", against.value);
      history.replaceState(null, "", "/playground?" + params.toString());
      params.set("partial", "1");
      fetch("/playground?" + params.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          if (mine !== seq) { return; }   // a newer request is on its way
          results.innerHTML = html;       // server-rendered, every value escaped there
          results.setAttribute("data-seq", String(mine));
        })
        .catch(function (status) {
          if (mine === seq) { results.setAttribute("data-error", String(status)); }
        });
    }
    function later() {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(run, 250);
    }
    q.addEventListener("input", later);
    against.addEventListener("change", run);
    results.addEventListener("click", function (ev) {
      var t = ev.target;
      if (t && t.id === "copy-toml" && navigator.clipboard) {
        navigator.clipboard.writeText(document.getElementById("toml").textContent);
        t.textContent = "Copied";
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onReady);
  } else {
    onReady();
  }
})();
