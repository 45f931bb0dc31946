// Jobs in flight, live: the overview's table follows the job events the dashboard pushes
// (Server-Sent Events from /live/events), and so do the tiles and the charts. Every pushed value is
// put in the page as text, never as HTML.
(function () {
  "use strict";
  var table = document.getElementById("inflight");
  if (!table || !window.EventSource) return;
  var tbody = table.tBodies[0];
  var empty = document.getElementById("inflight-empty");
  var state = document.getElementById("live-state");
  var events = document.getElementById("events");
  var terminal = table.dataset.terminal.split(" ");
  var DONE_MS = 8000; // a finished job stays this long, greyed, before it leaves the table
  var MAX_EVENTS = 100;

  function link(template, placeholder, value, css) {
    if (!value) return document.createTextNode("—");
    var a = document.createElement("a");
    a.href = template.replace(placeholder, encodeURIComponent(value));
    a.className = css;
    a.title = value;
    a.textContent = value.length > 13 ? value.slice(0, 12) + "…" : value;
    return a;
  }
  function jobLink(id) { return link(table.dataset.jobUrl, "JOB_ID", id, "job-id"); }
  function minerLink(hotkey) { return link(table.dataset.minerUrl, "HOTKEY", hotkey, "hotkey"); }
  function badge(status) {
    var span = document.createElement("span");
    span.className = "status status-" + status.replace(/[^a-z_]/g, "");
    span.textContent = status;
    return span;
  }
  function clock(at) { return new Date(at * 1000).toISOString().replace("T", " ").slice(0, 19); }
  function cell(row, index, node) {
    var td = row.cells[index];
    td.replaceChildren(node);
  }
  function findRow(jobId) {
    for (var i = 0; i < tbody.rows.length; i++) {
      if (tbody.rows[i].dataset.job === jobId) return tbody.rows[i];
    }
    return null;
  }
  function refreshEmpty() { if (empty) empty.hidden = tbody.rows.length > 0; }
  function isTerminal(status) { return terminal.indexOf(status) >= 0; }
  function bump(tile, delta) {
    var count = document.querySelector('[data-tile="' + tile + '"] strong');
    if (count) count.textContent = String(Math.max(0, Number(count.textContent) + delta));
  }
  // The tiles follow the table: "before" is the status the page had for the job (null: not listed).
  function tally(before, after) {
    var wasFlying = before !== null && !isTerminal(before);
    var flying = !isTerminal(after);
    if (wasFlying !== flying) bump("in_flight", flying ? 1 : -1);
    if (before !== after) {
      if (before !== null && isTerminal(before)) bump(before, -1);
      if (isTerminal(after)) bump(after, 1);
    }
  }

  function onJob(ev) {
    var row = findRow(ev.job_id);
    var done = isTerminal(ev.status);
    tally(row ? row.dataset.status : null, ev.status);
    if (!row) {
      row = tbody.insertRow(0);
      row.dataset.job = ev.job_id;
      for (var i = 0; i < 5; i++) row.insertCell();
      cell(row, 0, jobLink(ev.job_id));
    }
    cell(row, 1, badge(ev.status));
    cell(row, 2, document.createTextNode(String(ev.attempt)));
    cell(row, 3, minerLink(ev.miner));
    cell(row, 4, document.createTextNode(clock(ev.at)));
    row.dataset.status = ev.status;
    row.classList.remove("fresh");
    void row.offsetWidth; // restart the highlight
    row.classList.add("fresh");
    if (done) {
      row.classList.add("done");
      setTimeout(function () {
        if (row.dataset.status === ev.status && row.parentNode) { row.remove(); refreshEmpty(); }
      }, DONE_MS);
    } else {
      row.classList.remove("done");
    }
    refreshEmpty();
    addEvent(ev);
  }

  function addEvent(ev) {
    var li = document.createElement("li");
    li.dataset.job = ev.job_id;
    li.append(clock(ev.at) + "  ", jobLink(ev.job_id), " ", badge(ev.status));
    if (ev.attempt > 1) li.append(" attempt " + ev.attempt);
    if (ev.miner) li.append(" on ", minerLink(ev.miner));
    if (ev.reason) li.append(" — " + ev.reason + (ev.message ? ": " + ev.message : ""));
    events.prepend(li);
    while (events.children.length > MAX_EVENTS) events.lastElementChild.remove();
  }

  // The charts count the same events: read them again (a burst of events costs one read), so
  // that they never say 0 completed beside a table that shows one.
  var charts = document.querySelector(".charts[data-refresh]");
  var CHARTS_MS = 700;
  var chartsTimer = null;
  function refreshCharts() {
    if (!charts || chartsTimer !== null) return;
    chartsTimer = setTimeout(function () {
      chartsTimer = null;
      fetch(charts.dataset.refresh, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (markup) {
          // Markup from our own server, escaped by its templates; parsed inert, then moved in.
          var parsed = new DOMParser().parseFromString(markup, "text/html");
          charts.replaceChildren.apply(charts, Array.prototype.slice.call(parsed.body.childNodes));
        })
        .catch(function () { /* the next event tries again */ });
    }, CHARTS_MS);
  }

  var source = new EventSource(table.dataset.stream);
  source.addEventListener("open", function () { state.dataset.state = "open"; state.textContent = "live"; });
  source.addEventListener("error", function () {
    state.dataset.state = "error";
    state.textContent = source.readyState === EventSource.CLOSED ? "disconnected (reload the page)" : "reconnecting…";
  });
  source.addEventListener("job", function (message) { onJob(JSON.parse(message.data)); refreshCharts(); });
})();
