// One job: read /api/jobs/ID, then follow its pushed `status` events (the timeline grows per
// attempt); when it ends, read it once more for its result, logs and files.
(function () {
  "use strict";
  var M = Monitor;
  var jobId = document.getElementById("job-id").dataset.job;
  var timeline = document.getElementById("timeline");
  var seen = {};

  function attemptList(attempt) {
    var list = timeline.querySelector('ol[data-attempt="' + attempt + '"]');
    if (!list) {
      var section = M.el("section", null, "attempt");
      section.append(M.el("h3", "attempt " + attempt));
      list = M.el("ol", null, "timeline");
      list.dataset.attempt = String(attempt);
      section.append(list);
      timeline.append(section);
    }
    return list;
  }
  function addEvent(event, first) {
    var key = event.attempt + "/" + event.status;
    if (seen[key]) return;
    seen[key] = true;
    var li = M.el("li");
    li.dataset.status = event.status;
    var since = first ? " +" + M.seconds(event.at - first) : "";
    li.append(M.badge(event.status), M.el("span", M.clock(event.at) + since, "muted"));
    if (event.miner) { var miner = M.el("span", " on " + M.short(event.miner), "hotkey"); miner.title = event.miner; li.append(miner); }
    if (event.failure) li.append(M.el("span", " — " + event.failure.reason + ": " + event.failure.message, "reason"));
    if (event.retrying) li.append(M.el("span", " (retried)", "muted"));
    attemptList(event.attempt).append(li);
  }
  function fact(list, name, value) { list.append(M.el("dt", name), M.el("dd", value)); }
  function show(job) {
    var status = document.getElementById("job-status");
    status.replaceChildren(M.badge(job.status));
    status.dataset.status = job.status;
    var facts = document.getElementById("facts");
    facts.replaceChildren();
    fact(facts, "class", job.executor_class || "cpu.small");
    fact(facts, "miner", job.miner || "—");
    fact(facts, "validator", job.validator || "—");
    fact(facts, "attempt", job.attempt);
    fact(facts, "command", (job.spec.command || []).join(" "));
    fact(facts, "created", M.clock(Date.parse(job.created_at) / 1000));
    if (job.result) fact(facts, "exit code", job.result.exit_code), fact(facts, "ran", M.seconds(job.result.duration_s));
    var failure = document.getElementById("failure");
    failure.hidden = !job.failure;
    failure.textContent = job.failure ? job.failure.reason + ": " + job.failure.message : "";
    var first = job.history.length ? job.history[0].at : null;
    job.history.forEach(function (event) { addEvent(event, first); });
    timeline.dataset.first = first || "";
    var result = job.result || {};
    document.getElementById("stdout").textContent = (result.stdout || "") + (result.stdout_truncated ? "\n… (the rest: download stdout)" : "");
    document.getElementById("stderr").textContent = (result.stderr || "") + (result.stderr_truncated ? "\n… (the rest: download stderr)" : "");
    var files = document.getElementById("files");
    files.replaceChildren();
    job.files.forEach(function (file) {
      var a = M.el("a", file.path, "download");
      a.href = "/jobs/" + encodeURIComponent(jobId) + "/files/" + file.path.split("/").map(encodeURIComponent).join("/");
      a.setAttribute("download", file.path.split("/").pop());
      var li = M.el("li");
      li.append(a, M.el("span", " " + [file.kind, M.size(file.size)].filter(Boolean).join(", "), "muted"));
      files.append(li);
    });
    document.getElementById("files-empty").hidden = job.files.length > 0;
    var reports = document.getElementById("reports");
    reports.replaceChildren();
    (job.reports || []).forEach(function (report) {
      var li = M.el("li");
      var outcome = [report.reason, report.message].filter(Boolean).join(": ");
      li.append(M.badge(report.status), M.el("span", " " + report.report_id + (outcome ? " — " + outcome : ""), "muted"));
      reports.append(li);
    });
    document.getElementById("reports-empty").hidden = (job.reports || []).length > 0;
    document.body.dataset.status = job.status;
  }
  function load() {
    M.getJSON("/api/jobs/" + encodeURIComponent(jobId)).then(function (job) { M.showError(null); show(job); })
      .catch(function (error) { M.showError(error.message); });
  }
  function onStatus(event) {
    var first = Number(timeline.dataset.first) || event.at;
    addEvent(event, first);
    var status = document.getElementById("job-status");
    status.replaceChildren(M.badge(event.status));
  }
  function onJob(job) { if (job.done) load(); }
  M.follow("?job=" + encodeURIComponent(jobId), { status: onStatus, job: onJob }, load);
})();
