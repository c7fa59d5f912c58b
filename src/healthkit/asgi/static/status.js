// healthkit status page: loads every model once, draws only the rows in view and
// applies the transitions that arrive over Server-Sent Events. No dependencies.
(function () {
  "use strict";
  var body = document.body;
  var base = body.dataset.base;
  var SYMBOL = { healthy: "\u2714", degraded: "\u25b2", unknown: "?", unhealthy: "\u2716" };
  var ORDER = ["unhealthy", "unknown", "degraded", "healthy"];
  var ROW = 30; // px; fixed, so that only the rows in view need to exist

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function badge(status) {
    // Status is told by a word and a symbol, never by colour alone.
    var span = el("span", "badge s-" + status);
    var sym = el("span", null, SYMBOL[status] || "?");
    sym.setAttribute("aria-hidden", "true");
    span.appendChild(sym);
    span.appendChild(document.createTextNode(" " + status));
    return span;
  }

  function ago(iso) {
    if (!iso) return "-";
    var s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return Math.floor(s) + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    if (s < 86400) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }

  function pct(v) { return v === null || v === undefined ? "-" : v.toFixed(2) + "%"; }

  function stream(onEvent, onOpen) {
    var live = document.getElementById("live");
    var source = new EventSource(base + "/events");
    source.addEventListener("open", function () {
      if (live) { live.textContent = "live"; live.className = "live on"; }
      onOpen();
    });
    source.addEventListener("error", function () {
      if (live) { live.textContent = "reconnecting\u2026"; live.className = "live off"; }
    });
    ["transition", "summary", "dropped"].forEach(function (kind) {
      source.addEventListener(kind, function (e) { onEvent(kind, JSON.parse(e.data)); });
    });
    return source;
  }

  // -- the list ------------------------------------------------------------------------

  function listView() {
    var viewport = document.getElementById("viewport");
    var rowsEl = document.getElementById("rows");
    var filter = document.getElementById("filter");
    var search = document.getElementById("search");
    var pager = document.getElementById("pager");
    var models = [], byName = Object.create(null), shown = [];
    var loaded = false, pending = [], sortKey = "status", sortDir = 1;
    var hasHistory = false;

    document.getElementById("controls").addEventListener("submit", function (e) {
      e.preventDefault();
    });
    viewport.classList.add("virtual");
    if (pager) pager.hidden = true;

    function rank(m) { return ORDER.indexOf(m.status); }

    function compare(a, b) {
      var x, y;
      if (sortKey === "status") { x = rank(a); y = rank(b); }
      else if (sortKey === "uptime") { x = a.uptime ? a.uptime["24h"] : -1; y = b.uptime ? b.uptime["24h"] : -1; }
      else { x = a[sortKey]; y = b[sortKey]; }
      if (x === y || (x == null && y == null)) return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
      if (x == null) return 1;
      if (y == null) return -1;
      return (x < y ? -1 : 1) * sortDir;
    }

    function refilter() {
      var wanted = filter.value, q = search.value.trim().toLowerCase();
      shown = models.filter(function (m) {
        return (!wanted || m.status === wanted) && (!q || m.name.toLowerCase().indexOf(q) >= 0);
      });
      shown.sort(compare);
      render();
    }

    function counts() {
      var c = { healthy: 0, degraded: 0, unknown: 0, unhealthy: 0 };
      models.forEach(function (m) { c[m.status] = (c[m.status] || 0) + 1; });
      Object.keys(c).forEach(function (s) {
        var node = document.querySelector('[data-count="' + s + '"]');
        if (node) node.textContent = c[s];
      });
      document.getElementById("total").textContent = models.length;
    }

    function drawRow(m, i) {
      var row = el("div", "row");
      row.setAttribute("role", "row");
      row.dataset.name = m.name;
      row.dataset.status = m.status;
      row.style.top = i * ROW + "px";
      var name = el("span", "c-name");
      var link = el("a", null, m.name);
      link.href = base + "/models/" + encodeURIComponent(m.name);
      name.appendChild(link);
      row.appendChild(name);
      var st = el("span", "c-status");
      st.appendChild(badge(m.status));
      if (m.detail) st.title = m.detail;
      row.appendChild(st);
      var since = el("span", "c-since", ago(m.since));
      if (m.since) since.title = m.since;
      row.appendChild(since);
      row.appendChild(el("span", "c-strategy", m.strategy || "-"));
      row.appendChild(el("span", "c-latency_ms", m.latency_ms == null ? "-" : m.latency_ms + " ms"));
      row.appendChild(el("span", "c-uptime", m.uptime
        ? pct(m.uptime["24h"]) + " / " + pct(m.uptime["7d"]) + " / " + pct(m.uptime["30d"])
        : (hasHistory ? "-" : "no history")));
      row.appendChild(el("span", "c-p95_ms", m.p95_ms == null ? "-" : m.p95_ms + " / " + m.p99_ms + " ms"));
      return row;
    }

    function render() {
      rowsEl.style.height = shown.length * ROW + "px";
      var first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 5);
      var last = Math.min(shown.length, first + Math.ceil(viewport.clientHeight / ROW) + 10);
      var frag = document.createDocumentFragment();
      for (var i = first; i < last; i++) frag.appendChild(drawRow(shown[i], i));
      rowsEl.replaceChildren(frag);
      var empty = document.getElementById("empty");
      empty.hidden = shown.length > 0;
    }

    function apply(kind, data) {
      if (kind === "summary") {
        var ready = document.querySelector("#summary > span");
        if (ready) {
          ready.textContent = "Server " + (data.ready ? "ready" : "not ready");
          ready.className = "ready-" + data.ready;
        }
        return;
      }
      if (kind !== "transition") return;
      var m = byName[data.model.name];
      if (!m) { m = data.model; byName[m.name] = m; models.push(m); }
      else Object.assign(m, data.model);
      schedule();
    }

    // A storm of transitions (10,000 models starting) costs one filter, sort and draw
    // per animation frame, not one per event.
    var scheduled = false;
    function schedule() {
      if (scheduled) return;
      scheduled = true;
      window.requestAnimationFrame(function () {
        scheduled = false;
        counts();
        refilter();
      });
    }

    function load() {
      return fetch(base + "/api/models", { headers: { accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          hasHistory = data.history;
          models = data.models;
          byName = Object.create(null);
          models.forEach(function (m) { byName[m.name] = m; });
          loaded = true;
          counts();
          refilter();
          pending.splice(0).forEach(function (e) { apply(e[0], e[1]); });
          body.dataset.loaded = "true";
          // For the benchmark: when every model is loaded and the rows in view drawn.
          if (window.performance && performance.mark) performance.mark("healthkit-rows");
        });
    }

    var empty = el("p", "note", "No model matches.");
    empty.id = "empty";
    empty.hidden = true;
    viewport.after(empty);
    filter.addEventListener("change", refilter);
    search.addEventListener("input", refilter);
    viewport.addEventListener("scroll", function () { window.requestAnimationFrame(render); });
    window.addEventListener("resize", render);
    document.querySelectorAll("[data-sort]").forEach(function (h) {
      h.addEventListener("click", function () {
        var key = h.dataset.sort;
        sortDir = key === sortKey ? -sortDir : 1;
        sortKey = key;
        refilter();
      });
    });
    setInterval(render, 5000); // "since" columns age
    var opened = false;
    // The stream opens first, so that no transition between the snapshot and it is lost;
    // a reconnect (e.g. after being dropped as too slow) reloads the snapshot.
    stream(function (kind, data) {
      if (loaded) apply(kind, data); else pending.push([kind, data]);
    }, function () {
      if (opened) { loaded = false; load(); }
      opened = true;
    });
    load();
  }

  // -- one model ---------------------------------------------------------------------

  function modelView() {
    var name = body.dataset.model;
    var tbody = document.querySelector("#timeline tbody");
    var withReason = document.querySelectorAll("#timeline th").length > 3;
    stream(function (kind, data) {
      if (kind !== "transition" || data.model.name !== name) return;
      var tr = el("tr");
      tr.appendChild(el("td", null, data.at));
      var from = el("td"); from.appendChild(badge(data.old)); tr.appendChild(from);
      var to = el("td"); to.appendChild(badge(data.new)); tr.appendChild(to);
      if (withReason) tr.appendChild(el("td", null, data.model.detail || ""));
      tbody.insertBefore(tr, tbody.firstChild);
      var status = document.getElementById("model-status");
      status.replaceChild(badge(data.new), status.firstChild);
      document.getElementById("model-since").textContent = data.at;
    }, function () {});
    body.dataset.loaded = "true";
  }

  if (body.dataset.model) modelView(); else listView();
})();
