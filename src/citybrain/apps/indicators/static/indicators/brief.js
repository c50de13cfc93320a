/* The daily brief's list of the day's warnings: those raised during the day or in force at some time of it,
 * read from the warning app's API (which checks the reader's permission), oldest raised first.
 *
 * The API lists warnings newest change first: every active warning is read, then lifted ones page by page
 * until their changes are older than the day (a warning lifted before the day began is not of it).
 * Every text from the server is put into the page as text, never as HTML.
 */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    try { return el ? JSON.parse(el.textContent) : null; } catch (e) { return null; }
  }
  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }

  var cfg = readJson("brief-config");
  var T = readJson("brief-text") || {};
  var table = document.getElementById("brief-warning-list");
  if (!cfg || !table) return;
  var body = table.tBodies[0];
  var start = Date.parse(cfg.start);
  var end = Date.parse(cfg.end);
  var PAGE = 500;
  var MAX_PAGES = 20;
  var LEVELS = { red: "#d32f2f", orange: "#f57c00", yellow: "#c79a00", blue: "#1976d2" };
  var RANK = { red: 0, orange: 1, yellow: 2, blue: 3 };
  var parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Shanghai", hour12: false,
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"
  });

  function when(iso) {  // YYYY-MM-DD HH:mm in China time
    var p = {};
    parts.formatToParts(new Date(iso)).forEach(function (x) { p[x.type] = x.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + (p.hour === "24" ? "00" : p.hour) + ":" + p.minute;
  }

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { var e = new Error(String(r.status)); e.status = r.status; throw e; }
      return r.json();
    });
  }

  function pages(query, enough, found, offset) {  // follow the pages until `enough` says stop
    found = found || [];
    offset = offset || 0;
    return getJson("/api/warning/warnings?" + query + "&limit=" + PAGE + "&offset=" + offset).then(function (page) {
      found = found.concat(page.items);
      var more = page.items.length === PAGE && offset + PAGE < page.total && offset / PAGE + 1 < MAX_PAGES;
      if (!more || enough(page.items)) return found;
      return pages(query, enough, found, offset + PAGE);
    });
  }

  function message(text) {
    body.textContent = "";
    var tr = node("tr");
    var td = node("td", "muted", text);
    td.colSpan = 5;
    tr.appendChild(td);
    body.appendChild(tr);
  }

  function ofTheDay(w) {
    var raised = Date.parse(w.raised_at);
    return raised < end && (!w.lifted_at || Date.parse(w.lifted_at) >= start);
  }

  function draw(warnings) {
    var rows = warnings.filter(ofTheDay).sort(function (a, b) {
      return (Date.parse(a.raised_at) - Date.parse(b.raised_at)) || (RANK[a.level] - RANK[b.level]) || (a.id - b.id);
    });
    table.dataset.count = String(rows.length);
    if (!rows.length) { message(T.none); return; }
    body.textContent = "";
    rows.forEach(function (w) {
      var tr = node("tr");
      tr.dataset.warning = w.id;
      tr.dataset.level = w.level;
      var level = node("td");
      var chip = node("span", "brief-chip", (T.levels && T.levels[w.level]) || w.level_name || w.level);
      chip.style.setProperty("--c", LEVELS[w.level] || w.color || "#7f8c9a");
      level.appendChild(chip);
      tr.appendChild(level);
      var title = node("td");
      var a = node("a", null, w.title);
      a.href = "/warning/warnings/" + w.id;
      title.appendChild(a);
      tr.appendChild(title);
      var place = node("td", null, w.district ? (cfg.names[w.district] || w.district) : T.city);
      if (w.entity_id) { place.appendChild(node("br")); place.appendChild(node("code", "small", w.entity_id)); }
      tr.appendChild(place);
      tr.appendChild(node("td", "num", when(w.raised_at)));
      tr.appendChild(w.lifted_at ? node("td", "num", when(w.lifted_at)) : node("td", "brief-in-force", T.in_force));
      body.appendChild(tr);
    });
  }

  function load() {
    if (!cfg.warning) { message(T.disabled); table.dataset.state = "disabled"; return; }
    var active = pages("status=active", function () { return false; });
    var lifted = pages("status=lifted", function (items) {  // newest change first: stop once older than the day
      return items.length > 0 && Date.parse(items[items.length - 1].changed_at) < start;
    });
    Promise.all([active, lifted]).then(function (found) {
      draw(found[0].concat(found[1]));
      table.dataset.state = "ready";
    }).catch(function (e) {
      message(e && (e.status === 403 || e.status === 401) ? T.forbidden : T.failed);
      table.dataset.state = "failed";
    });
  }

  load();
})();
