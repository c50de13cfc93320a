/* The warning pages: the warning centre's map (districts, one marker per listed warning, redrawn after
 * each live refresh), the charts of the data that triggered a warning, and the rule editor's fields
 * shown by rule kind and scope.
 *
 * Chart times arrive as China-time wall clock read as UTC; the charts draw in UTC mode so every browser
 * shows China Standard Time. Every text from the server is put into the page as text, never as HTML.
 */
(function () {
  "use strict";

  var FILLS = ["#dce9f6", "#e2f0dc", "#f5ead6", "#ebe2f2", "#d9efec", "#f6e0df", "#e8edd5", "#f1e5da", "#dde3f1"];
  var PULSING = { red: true, orange: true };

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }

  // --- the warning centre's map --------------------------------------------------------------------

  function startMap() {
    var el = document.getElementById("warning-map");
    var cfg = readJson("warning-map-config");
    if (!el || !cfg || typeof L === "undefined") return;
    var T = readJson("warning-map-text") || {};
    var zh = cfg.locale === "zh_CN";
    var b = cfg.bounds;
    var bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
    var map = L.map(el, { zoomSnap: 0.25, minZoom: 7, maxZoom: 17, attributionControl: false });
    map.fitBounds(bounds, { padding: [8, 8] });
    cfg.districts.features.forEach(function (f, i) { f.properties.fill = FILLS[i % FILLS.length]; });
    L.geoJSON(cfg.districts, {
      style: function (f) {
        return { color: "#ffffff", weight: 1.4, fillColor: f.properties.fill, fillOpacity: 0.95 };
      },
      onEachFeature: function (f, lyr) {
        lyr.bindTooltip(zh ? f.properties.name_zh : f.properties.name_en, { sticky: true });
      }
    }).addTo(map);
    var markers = L.layerGroup().addTo(map);

    function popup(item) {
      var box = node("div", "warning-popup");
      box.appendChild(node("strong", "", item.title));
      box.appendChild(node("div", "small", (T.levels || {})[item.level] || item.level));
      box.appendChild(node("div", "small", item.entity_id));
      if (item.placed === "district") box.appendChild(node("div", "small muted", T.district_centre || ""));
      if (item.placed === "city") box.appendChild(node("div", "small muted", T.city_centre || ""));
      var link = node("a", "", T.open || "Open");
      link.href = "/warning/warnings/" + item.id;
      box.appendChild(link);
      return box;
    }

    function draw() {
      var items = readJson("warning-markers") || [];
      markers.clearLayers();
      items.forEach(function (item) {
        var pulse = PULSING[item.level] && item.status === "active";
        var icon = L.divIcon({
          className: "warning-marker level-" + item.level + (pulse ? " pulse" : "") + (item.status !== "active" ? " lifted" : ""),
          iconSize: [18, 18],
          html: '<span style="background:' + item.color + '"></span>'
        });
        var marker = L.marker([item.lat, item.lon], { icon: icon, title: item.title, keyboard: true });
        marker.bindPopup(function () { return popup(item); });
        marker.on("add", function () {
          var m = marker.getElement();
          if (m) { m.setAttribute("data-warning", String(item.id)); m.setAttribute("data-level", item.level); }
        });
        markers.addLayer(marker);
      });
      el.setAttribute("data-markers", String(items.length));
    }

    draw();
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () { map.invalidateSize(); }).observe(el);
    }
    document.body.addEventListener("htmx:afterSettle", function (event) {
      if (event.target && event.target.id === "warning-results") draw();
    });
    window.citybrainWarningMap = { map: map, markers: markers };
  }

  // --- the charts of a warning's triggering data -----------------------------------------------------

  function startCharts() {
    var charts = readJson("trigger-charts");
    if (!charts || !charts.length || typeof echarts === "undefined") return;
    var T = readJson("trigger-text") || {};
    var drawn = [];
    charts.forEach(function (chart) {
      var el = document.querySelector('[data-trigger-chart="' + chart.id + '"]');
      if (!el || !chart.points.length) return;
      var lines = chart.thresholds.map(function (t) {
        return {
          yAxis: t.value,
          lineStyle: { color: t.color, type: "dashed", width: 1.5 },
          label: { formatter: ((T.levels || {})[t.level] || t.level) + " " + t.value, color: t.color, position: "insideEndTop" }
        };
      });
      lines.push({ xAxis: chart.raised, lineStyle: { color: "#37474f", type: "solid" }, label: { formatter: T.raised || "", position: "end" } });
      if (chart.lifted) {
        lines.push({ xAxis: chart.lifted, lineStyle: { color: "#78909c", type: "dotted" }, label: { formatter: T.lifted || "", position: "end" } });
      }
      var values = chart.points.map(function (p) { return p[1]; }).concat(chart.thresholds.map(function (t) { return t.value; }));
      var low = Math.min.apply(null, values);
      var high = Math.max.apply(null, values);
      var pad = (high - low) * 0.08 || 1;
      var instance = echarts.init(el, null, { renderer: "canvas" });
      instance.setOption({
        useUTC: true,
        animation: false,
        grid: { left: 12, right: 70, top: 24, bottom: 8, containLabel: true },
        tooltip: { trigger: "axis" },
        xAxis: { type: "time", axisLine: { lineStyle: { color: "#9aa8b6" } } },
        yAxis: { type: "value", min: Math.floor(low - pad), max: Math.ceil(high + pad), splitLine: { lineStyle: { color: "#e6ebf0" } } },
        series: [{
          type: "line", name: chart.name, data: chart.points, color: "#0b5cad",
          showSymbol: chart.points.length <= 60, areaStyle: { opacity: 0.06 },
          markLine: { symbol: "none", silent: true, data: lines }
        }]
      });
      el.setAttribute("data-drawn", "true");
      drawn.push(instance);
    });
    window.addEventListener("resize", function () { drawn.forEach(function (c) { if (!c.isDisposed()) c.resize(); }); });
  }

  // --- the rule editor -------------------------------------------------------------------------------

  function startEditor() {
    var form = document.getElementById("rule-form");
    if (!form) return;
    var kind = form.querySelector("[name=kind]");
    var scope = form.querySelector("[name=scope_kind]");
    function show() {
      var k = kind.value;
      form.querySelectorAll("[data-kinds]").forEach(function (el) {
        el.hidden = el.getAttribute("data-kinds").split(" ").indexOf(k) < 0;
      });
      form.querySelectorAll("[data-scope]").forEach(function (el) {
        el.hidden = el.getAttribute("data-scope") !== scope.value;
      });
    }
    kind.addEventListener("change", show);
    scope.addEventListener("change", show);
    show();
  }

  function start() {
    startMap();
    startCharts();
    startEditor();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
