// The jobs table: read /api/jobs once (and at every reconnection), then follow the pushed `job`
// events; rows are updated in place, new jobs go on top, the status filter applies as they come.
(function () {
  "use strict";
  var M = Monitor;
  var tbody = document.querySelector("#jobs tbody");
  var empty = document.getElementById("jobs-empty");
  var shown = document.getElementById("shown");
  var filter = document.querySelector("#filters select[name=status]");
  var jobs = {};
  var params = new URLSearchParams(location.search);
  filter.value = params.get("status") || "";

  function cells(job) {
    var total = job.ended_at && job.created_at ? job.ended_at - job.created_at : null;
    var miner = M.el("span", M.short(job.miner), "hotkey");
    if (job.miner) miner.title = job.miner;
    var command = M.el("code", job.command.length > 60 ? job.command.slice(0, 59) + "…" : job.command);
    command.title = job.command;
    return [M.jobLink(job.job_id), M.badge(job.status), M.el("span", job.executor_class), miner,
            M.el("span", job.attempt), M.el("span", M.clock(job.created_at)),
            M.el("span", job.done ? M.seconds(total) : M.seconds(Math.max(0, Date.now() / 1000 - job.created_at)) + " so far", "total"), M.el("span", M.seconds(job.ran_s), "ran"),
            command];
  }
  function render(job) {
    var row = tbody.querySelector('tr[data-job="' + CSS.escape(job.job_id) + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.job = job.job_id;
      var before = null;
      for (var i = 0; i < tbody.rows.length; i++) {  // newest first
        if ((jobs[tbody.rows[i].dataset.job] || {}).created_at < job.created_at) { before = tbody.rows[i]; break; }
      }
      tbody.insertBefore(row, before);
    }
    row.replaceChildren.apply(row, cells(job).map(function (node) { var td = document.createElement("td"); td.append(node); return td; }));
    row.dataset.status = job.status;
    row.classList.toggle("done", job.done);
    row.hidden = !!filter.value && job.status !== filter.value;
  }
  function refresh() {
    var visible = 0;
    for (var i = 0; i < tbody.rows.length; i++) {
      var row = tbody.rows[i];
      row.hidden = !!filter.value && row.dataset.status !== filter.value;
      if (!row.hidden) visible++;
    }
    empty.hidden = tbody.rows.length > 0;
    shown.textContent = visible + " of " + tbody.rows.length + " shown";
  }
  function onJob(job) { jobs[job.job_id] = job; render(job); refresh(); }
  function load() {
    M.getJSON("/api/jobs").then(function (body) {
      M.showError(body.error);
      body.jobs.forEach(function (job) { jobs[job.job_id] = job; render(job); });
      refresh();
    }).catch(function (error) { M.showError(error.message); });
  }
  filter.addEventListener("change", function () {
    var url = new URL(location.href);
    if (filter.value) url.searchParams.set("status", filter.value); else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    refresh();
  });
  // Jobs still going: their total so far ticks along without any event.
  setInterval(function () {
    Object.keys(jobs).forEach(function (id) {
      var job = jobs[id];
      if (job.done || !job.created_at) return;
      var cell = tbody.querySelector('tr[data-job="' + CSS.escape(id) + '"] .total');
      if (cell) cell.textContent = M.seconds(Math.max(0, Date.now() / 1000 - job.created_at)) + " so far";
    });
  }, 1000);
  M.follow("", { job: onJob }, load);
})();
