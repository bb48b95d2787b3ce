// Live figures for the topology page: every few seconds, records per second into each node.
// Served by the worker itself, like everything the page needs.
(function () {
  "use strict";
  var REFRESH_MS = 2000;
  var status = document.getElementById("status");

  function format(rate) {
    if (rate >= 1000) { return (rate / 1000).toFixed(1) + "k rec/s"; }
    return rate.toFixed(rate >= 10 ? 0 : 1) + " rec/s";
  }

  function show(data) {
    var labels = document.querySelectorAll("text[data-rate-for]");
    for (var i = 0; i < labels.length; i++) {
      var node = labels[i].getAttribute("data-rate-for");
      var rate = data.rates[node];
      var total = data.totals[node];
      labels[i].textContent = rate === undefined ? "not on this worker"
        : format(rate) + " \u00b7 " + total.toLocaleString("en") + " total";
      labels[i].parentNode.classList.toggle("busy", rate > 0);
    }
    status.classList.remove("stale");
    status.textContent = "worker " + data.worker + (data.endpoint ? " at " + data.endpoint : "") +
      " \u00b7 " + (data.ready ? "ready" : "not ready") + " \u00b7 tasks " + (data.tasks.join(", ") || "none") +
      (data.standby_tasks.length ? " \u00b7 standby " + data.standby_tasks.join(", ") : "") +
      " \u00b7 updated " + new Date().toLocaleTimeString("en-GB");
    document.body.setAttribute("data-updated", String(Date.now()));
  }

  function refresh() {
    fetch("/topology.json", {cache: "no-store"})
      .then(function (response) { return response.json(); })
      .then(show)
      .catch(function (error) {
        status.classList.add("stale");
        status.textContent = "no answer from the worker: " + error;
      });
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
