// What the monitor's pages share: the event stream, and building elements from text (never HTML:
// job ids, commands and logs come from the network).
var Monitor = (function () {
  "use strict";
  function el(tag, text, css) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (css) node.className = css;
    return node;
  }
  function badge(status) { return el("span", status, "status status-" + String(status).replace(/[^a-z_]/g, "")); }
  function jobLink(id) {
    var a = el("a", id, "job-id");
    a.href = "/jobs/" + encodeURIComponent(id);
    return a;
  }
  function short(value) { return !value ? "—" : value.length > 13 ? value.slice(0, 12) + "…" : value; }
  function clock(at) { return at ? new Date(at * 1000).toLocaleString() : "—"; }
  function seconds(value) {
    if (value === null || value === undefined) return "—";
    return value < 60 ? value.toFixed(value < 10 ? 2 : 1) + " s" : Math.floor(value / 60) + " min " + Math.round(value % 60) + " s";
  }
  function size(bytes) {
    if (bytes === null || bytes === undefined) return "";
    var units = ["B", "KiB", "MiB", "GiB"], i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : String(bytes)) + " " + units[i];
  }
  function showError(text) {
    var box = document.getElementById("feed-error");
    if (!box) return;
    box.hidden = !text;
    box.textContent = text ? "the facilitator: " + text : "";
  }
  // Follow /events (Server-Sent Events); `onOpen` runs at every (re)connection, so a page reads its
  // JSON afresh then and misses nothing that happened while the stream was down.
  function follow(query, handlers, onOpen) {
    var state = document.getElementById("live-state");
    var source = new EventSource("/events" + query);
    source.addEventListener("ready", function () {
      state.dataset.state = "open";
      state.textContent = "live";
      if (onOpen) onOpen();
    });
    source.addEventListener("error", function () {
      state.dataset.state = "error";
      state.textContent = "reconnecting…";
    });
    Object.keys(handlers).forEach(function (kind) {
      source.addEventListener(kind, function (message) { handlers[kind](JSON.parse(message.data)); });
    });
    return source;
  }
  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.message || response.statusText);
        return body;
      });
    });
  }
  return { el: el, badge: badge, jobLink: jobLink, short: short, clock: clock, seconds: seconds, size: size,
           showError: showError, follow: follow, getJSON: getJSON };
})();
