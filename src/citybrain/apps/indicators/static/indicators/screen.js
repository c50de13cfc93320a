/* The IOC screen (城市运行一屏观全域): gauges, trends and rankings of the vital signs (ECharts), the map of
 * Mianyang with its live layers, pulsing warnings and open events (Leaflet), a ticker of what is new.
 *
 * The page carries its first data, so it paints at once; the warnings and events come from the warning and
 * command apps' APIs. Changes are pushed as server-sent events (/api/indicators/stream): each message
 * reloads what it concerns. EventSource reconnects by itself; a stream that fails for good is reopened.
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
  function format(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (m, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : m;
    });
  }

  var cfg = readJson("ioc-config");
  var data = readJson("ioc-data");
  var T = readJson("ioc-text") || {};
  if (!cfg || !data) return;
  var zh = cfg.locale === "zh_CN";
  var district = cfg.district || null;
  var LEVELS = { red: "#ff3b30", orange: "#ff8c1a", yellow: "#ffd60a", blue: "#2f8cff" };
  var RANK = { red: 0, orange: 1, yellow: 2, blue: 3 };
  var COLORS = data.colors;
  var NEUTRAL = "#7f9bc2";
  var zone = { timeZone: "Asia/Shanghai", hour12: false };
  var clockFormat = new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", Object.assign({
    year: "numeric", month: "2-digit", day: "2-digit", weekday: "short",
    hour: "2-digit", minute: "2-digit", second: "2-digit"
  }, zone));
  var shortFormat = new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", Object.assign({
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"
  }, zone));
  var timeFormat = new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", Object.assign({
    hour: "2-digit", minute: "2-digit", second: "2-digit"
  }, zone));
  var names = {};
  data.districts.forEach(function (d) { names[d.code] = d.name; });
  names[data.city.code] = data.city.name;

  function shown(value, decimals) {
    if (value === null || value === undefined) return "—";
    return Number(value).toFixed(decimals);
  }
  function levelColor(level) { return (level && COLORS[level]) || NEUTRAL; }
  function drill(code) {
    window.location.href = "/indicators/screen" + (code ? "?district=" + encodeURIComponent(code) : "");
  }
  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { var e = new Error(String(r.status)); e.status = r.status; throw e; }
      return r.json();
    });
  }

  // --- clock and header -----------------------------------------------------------------------------

  var clock = document.getElementById("ioc-clock");
  function tick() { clock.textContent = clockFormat.format(new Date()); }
  tick();
  setInterval(tick, 1000);
  var select = document.getElementById("ioc-district");
  if (select) select.addEventListener("change", function () { drill(select.value); });

  // --- the vital signs (ECharts) ------------------------------------------------------------------

  var charts = [];
  function chartOn(el) {
    if (!el || typeof echarts === "undefined") return null;
    var chart = echarts.init(el, null, { renderer: "canvas" });
    charts.push(chart);
    return chart;
  }
  var gaugeCharts = {};
  var trendCharts = {};
  var rankingChart = null;
  var rankingCode = data.rankings.length ? data.rankings[0].code : null;
  var rankingPinned = false;

  function gaugeOption(g) {
    var top = g.max || 100;
    var stops = [[1, "#35d07f"]];
    if (g.thresholds) {
      var w = Math.min(g.thresholds.warn / top, 1), b = Math.min(g.thresholds.bad / top, 1);
      stops = g.thresholds.direction === "higher_is_worse"
        ? [[w, COLORS.good], [b, COLORS.warn], [1, COLORS.bad]]
        : [[b, COLORS.bad], [w, COLORS.warn], [1, COLORS.good]];
    }
    var h = gaugeCharts[g.code] ? gaugeCharts[g.code].getHeight() : 160;
    var big = Math.max(14, Math.round(h * 0.16));
    return {
      animationDurationUpdate: 800,
      series: [{
        type: "gauge", min: 0, max: top, radius: "92%", center: ["50%", "58%"],
        startAngle: 215, endAngle: -35, splitNumber: 5,
        axisLine: { lineStyle: { width: Math.max(6, Math.round(h * 0.06)), color: stops } },
        progress: { show: false },
        // no value: no pointer (a pointer at 0 would read as a value), "—" and the reason as the tooltip
        pointer: { show: g.value !== null && g.value !== undefined, width: 3, length: "62%", itemStyle: { color: "#dff3ff" } },
        anchor: { show: true, size: 7, itemStyle: { color: "#33e1ff" } },
        axisTick: { distance: -Math.round(h * 0.06), length: 4, lineStyle: { color: "rgba(255,255,255,0.5)", width: 1 } },
        splitLine: { distance: -Math.round(h * 0.06), length: Math.round(h * 0.06), lineStyle: { color: "rgba(255,255,255,0.8)", width: 1 } },
        axisLabel: { distance: Math.round(h * 0.09), color: "#7f9bc2", fontSize: Math.max(8, Math.round(h * 0.065)) },
        title: { offsetCenter: [0, "78%"], color: "#b8cde8", fontSize: Math.max(10, Math.round(h * 0.085)) },
        detail: {
          valueAnimation: true, offsetCenter: [0, "38%"], fontSize: big, fontWeight: 700,
          color: levelColor(g.level),
          formatter: function (v) {
            if (g.value === null || g.value === undefined) return "—";
            return Number(v).toFixed(g.decimals) + (g.unit ? " " + g.unit : "");
          }
        },
        data: [{ value: g.value === null ? 0 : g.value, name: g.name }]
      }]
    };
  }

  function drawGauges() {
    data.gauges.forEach(function (g) {
      var el = document.querySelector('.ioc-gauge[data-code="' + g.code + '"]');
      if (!el) return;
      el.title = g.reason || "";
      if (!gaugeCharts[g.code]) gaugeCharts[g.code] = chartOn(el);
      if (gaugeCharts[g.code]) gaugeCharts[g.code].setOption(gaugeOption(g));
    });
  }

  var TREND = "#33e1ff";
  var FEW_POINTS = 48;  // up to this many values each one is marked; beyond, the line alone (hover marks)

  function trendOption(t) {
    var empty = !t.points.length;
    var top = null;  // a share in per cent tops out at 100 unless a value goes beyond
    if (t.unit === "%" && t.points.every(function (p) { return p[1] <= 100; })) top = 100;
    var marks = [];
    if (t.thresholds && !empty) {
      marks.push({ yAxis: t.thresholds.warn, lineStyle: { color: COLORS.warn } });
      marks.push({ yAxis: t.thresholds.bad, lineStyle: { color: COLORS.bad } });
    }
    return {
      useUTC: true,  // the times are China's wall clock, sent as UTC milliseconds
      animation: false,
      grid: { left: 38, right: 14, top: 22, bottom: 18 },
      title: { text: t.name + (t.unit ? " (" + t.unit + ")" : ""), left: 4, top: 0, textStyle: { color: "#b8cde8", fontSize: 12, fontWeight: 400 } },
      tooltip: {
        trigger: "axis",
        axisPointer: { lineStyle: { color: "rgba(51,225,255,0.5)" } },
        valueFormatter: function (v) { return shown(v, t.decimals); }
      },
      graphic: empty ? [{
        type: "text", left: "center", top: "middle",
        style: { text: T.no_data, fill: "#7f9bc2", fontSize: 13 }
      }] : [],
      xAxis: {
        type: "time", min: t.start, max: t.end, show: !empty,
        axisLine: { lineStyle: { color: "#2a4a78" } },
        axisTick: { show: false },
        axisLabel: { color: "#7f9bc2", fontSize: 10, hideOverlap: true, formatter: "{HH}:{mm}", showMinLabel: false, showMaxLabel: false },
        splitLine: { show: false }
      },
      yAxis: {
        type: "value", scale: true, show: !empty, splitNumber: 3, max: top,
        axisLabel: { color: "#7f9bc2", fontSize: 10 },
        splitLine: { lineStyle: { color: "rgba(64,158,255,0.12)" } }
      },
      series: [{
        type: "line", data: t.points, smooth: false, sampling: "lttb", connectNulls: false,
        clip: false,  // a value at the window's edge (now) is drawn whole
        showSymbol: t.points.length <= FEW_POINTS, symbol: "circle", symbolSize: 7,
        itemStyle: { color: TREND, borderColor: "#0b1e3c", borderWidth: 1 },
        lineStyle: { width: 2.5, color: TREND, shadowBlur: 6, shadowColor: "rgba(51,225,255,0.6)" },
        areaStyle: { color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [{ offset: 0, color: "rgba(51,225,255,0.35)" }, { offset: 1, color: "rgba(51,225,255,0.02)" }]) },
        markLine: { silent: true, symbol: "none", label: { show: false }, lineStyle: { type: "dashed", width: 1 }, data: marks }
      }]
    };
  }

  function drawTrends() {
    data.trends.forEach(function (t) {
      var el = document.querySelector('.ioc-trend[data-code="' + t.code + '"]');
      if (!el) return;
      if (!trendCharts[t.code]) trendCharts[t.code] = chartOn(el);
      var chart = trendCharts[t.code];
      if (!chart) return;
      el.dataset.points = String(t.points.length);
      chart.setOption(trendOption(t), true);
    });
  }

  function drawRanking() {
    var tabs = document.querySelectorAll("#ioc-ranking-tabs button");
    Array.prototype.forEach.call(tabs, function (b) { b.setAttribute("aria-selected", String(b.dataset.code === rankingCode)); });
    var r = data.rankings.filter(function (x) { return x.code === rankingCode; })[0];
    var el = document.getElementById("ioc-ranking");
    if (!r || !el) return;
    if (!rankingChart) {
      rankingChart = chartOn(el);
      if (!rankingChart) return;
      rankingChart.on("click", function (p) { if (p.data && p.data.area) drill(p.data.area); });
    }
    var items = r.items.slice().reverse();
    rankingChart.setOption({
      animationDurationUpdate: 600,
      grid: { left: 8, right: 48, top: 4, bottom: 4, containLabel: true },
      xAxis: { type: "value", show: false },
      yAxis: {
        type: "category", data: items.map(function (i) { return i.name; }),
        axisLine: { show: false }, axisTick: { show: false },
        axisLabel: { color: "#d8e8ff", fontSize: 12, formatter: function (v) { return v; } }
      },
      tooltip: { trigger: "item", formatter: function (p) { return p.name + ": " + shown(p.value, r.decimals) + " " + r.unit; } },
      graphic: items.length ? [] : [{
        type: "text", left: "center", top: "middle",
        style: { text: T.no_values, fill: "#7f9bc2", fontSize: 13 }
      }],
      series: [{
        type: "bar", barWidth: "55%",
        data: items.map(function (i) {
          var c = levelColor(i.level);
          return {
            value: i.value, area: i.area,
            itemStyle: {
              borderRadius: [0, 3, 3, 0],
              color: new echarts.graphic.LinearGradient(0, 0, 1, 0, [{ offset: 0, color: "rgba(51,225,255,0.25)" }, { offset: 1, color: c }]),
              borderColor: district === i.area ? "#ffffff" : "transparent", borderWidth: district === i.area ? 1 : 0
            }
          };
        }),
        label: { show: true, position: "right", color: "#d8e8ff", fontSize: 11, formatter: function (p) { return shown(p.value, r.decimals); } }
      }]
    }, true);
  }
  Array.prototype.forEach.call(document.querySelectorAll("#ioc-ranking-tabs button"), function (b) {
    b.addEventListener("click", function () { rankingCode = b.dataset.code; rankingPinned = true; drawRanking(); });
  });
  setInterval(function () {  // the ranking turns through its indicators until one is chosen
    if (rankingPinned || data.rankings.length < 2) return;
    var at = data.rankings.map(function (r) { return r.code; }).indexOf(rankingCode);
    rankingCode = data.rankings[(at + 1) % data.rankings.length].code;
    drawRanking();
  }, 12000);

  function drawSigns(flash) {
    data.signs.forEach(function (s) {
      var li = document.querySelector('.ioc-sign[data-code="' + s.code + '"]');
      if (!li) return;
      // no value: "—" alone (no unit), the reason as the tooltip
      var text = s.reason ? "—" : (s.kind === "text" ? (s.text || "—") : shown(s.value, s.decimals));
      var b = li.querySelector("b");
      var unit = li.querySelector("small");
      if (unit) unit.textContent = s.reason ? "" : (s.unit || "");
      if (b.textContent !== text || li.dataset.level !== (s.level || "")) {
        b.textContent = text;
        li.dataset.level = s.level || "";
        if (flash) { li.classList.remove("ioc-flash"); void li.offsetWidth; li.classList.add("ioc-flash"); }
      }
      li.title = s.reason || s.name;
      if (s.reason) li.dataset.missing = "true"; else delete li.dataset.missing;
    });
    var updated = document.getElementById("ioc-updated");
    if (updated && data.computed_at) updated.textContent = format(T.updated, { time: timeFormat.format(new Date(data.computed_at)) });
  }

  function drawVitals(flash) {
    drawSigns(flash);
    drawGauges();
    drawTrends();
    drawRanking();
    drawDistrictValues();
  }

  // --- the map ------------------------------------------------------------------------------------

  var map = null, districtLayer = null, labels = {}, layerGroups = {}, warningLayer = null, eventLayer = null;
  var featuresById = {};
  var labelPoints = {};
  var bounds = null;
  var focusBounds = null;

  function setupMap() {
    var el = document.getElementById("ioc-map");
    if (!el || typeof L === "undefined") return;
    var b = cfg.map.bounds;
    bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
    map = L.map(el, { zoomControl: true, attributionControl: false, zoomSnap: 0.25, preferCanvas: true, maxBounds: bounds.pad(0.6) });
    map.createPane("warnings").style.zIndex = 650;
    districtLayer = L.geoJSON(cfg.map.districts, {
      renderer: L.svg(),  // paths a person (or a test) can click, under the canvas of the live layers
      style: function (f) {
        var mine = district === f.properties.code;
        return {
          className: "ioc-district ioc-district-" + f.properties.code,
          color: mine ? "#33e1ff" : "#3f8fe0", weight: mine ? 2.5 : 1.2,
          fillColor: mine ? "#1b5cb0" : "#0f3a78", fillOpacity: district && !mine ? 0.18 : 0.55
        };
      },
      onEachFeature: function (f, layer) {
        var code = f.properties.code;
        labelPoints[code] = f.properties.label;
        layer.on("click", function () { drill(code === district ? null : code); });
        layer.on("mouseover", function () { layer.setStyle({ fillOpacity: 0.8, fillColor: "#2569c4" }); });
        layer.on("mouseout", function () { districtLayer.resetStyle(layer); });
        var label = L.tooltip({ permanent: true, direction: "center", className: "ioc-district-label", interactive: false })
          .setLatLng([f.properties.label[1], f.properties.label[0]]);
        labels[code] = label;
        label.setContent(names[code] || f.properties.name_zh);
        label.addTo(map);
      }
    }).addTo(map);
    districtLayer.eachLayer(function (layer) { if (layer.feature.properties.code === district) focusBounds = layer.getBounds(); });
    map.fitBounds(focusBounds || bounds, { padding: [12, 12] });
    warningLayer = L.layerGroup().addTo(map);
    eventLayer = L.layerGroup().addTo(map);
    cfg.map.layers.forEach(loadLayer);
  }

  function drawDistrictValues() {
    var r = data.rankings.length ? data.rankings[0] : null;
    if (!map || !r) return;
    var values = {};
    r.items.forEach(function (i) { values[i.area] = i; });
    Object.keys(labels).forEach(function (code) {
      var el = node("span", null, names[code] || code);
      var v = values[code];
      if (v) el.appendChild(node("span", "ioc-district-value", r.name + " " + shown(v.value, r.decimals)));
      labels[code].setContent(el);
    });
  }

  function paletteColor(layer, props) {
    if (layer.color_by && layer.palette) {
      var v = props[layer.color_by];
      for (var i = 0; i < layer.palette.length; i++) {
        if (String(layer.palette[i].value) === String(v)) return layer.palette[i].color;
      }
    }
    return layer.color;
  }

  function loadLayer(layer) {
    var url = layer.features + (district ? "?district=" + encodeURIComponent(district) : "");
    return getJson(url).then(function (body) {
      if (layerGroups[layer.id]) map.removeLayer(layerGroups[layer.id]);
      var group = L.geoJSON(body, {
        style: function (f) { return { color: paletteColor(layer, f.properties), weight: 3, opacity: 0.9 }; },
        pointToLayer: function (f, latlng) {
          var c = paletteColor(layer, f.properties);
          return L.circleMarker(latlng, { radius: 4, color: "#ffffff", weight: 0.8, fillColor: c, fillOpacity: 0.95 });
        },
        onEachFeature: function (f, l) {
          featuresById[f.id || f.properties.id] = f;
          if (f.properties.name) l.bindTooltip(layer.title + " · " + f.properties.name);
        }
      }).addTo(map);
      layerGroups[layer.id] = group;
      if (warnings.length) drawWarnings();  // warnings of the layer's entities stand on them
      return null;
    }).catch(function () { return null; });
  }

  // --- warnings and events --------------------------------------------------------------------------

  var warnings = [];
  var events = [];
  var seen = {};
  var firstLoad = true;

  function warningPoint(w) {
    var f = featuresById[w.entity_id];
    if (f && f.geometry) {
      if (f.geometry.type === "Point") return [f.geometry.coordinates[1], f.geometry.coordinates[0]];
      var c = L.geoJSON(f).getBounds().getCenter();
      return [c.lat, c.lng];
    }
    var p = labelPoints[w.district];
    if (p) return [p[1] + 0.012 * ((w.id % 5) - 2) / 2, p[0] + 0.012 * ((w.id % 7) - 3) / 3];
    if (bounds) { var m = bounds.getCenter(); return [m.lat, m.lng]; }
    return null;
  }

  function drawWarnings() {
    var counts = { red: 0, orange: 0, yellow: 0, blue: 0 };
    warnings.forEach(function (w) { if (counts[w.level] !== undefined) counts[w.level] += 1; });
    Object.keys(counts).forEach(function (level) {
      var b = document.querySelector('.ioc-kpi[data-kpi="' + level + '"] b');
      if (b) b.textContent = cfg.apps.warning ? String(counts[level]) : "—";
    });
    document.getElementById("ioc-warnings-count").textContent = cfg.apps.warning ? String(warnings.length) : "";
    var list = document.getElementById("ioc-warnings");
    list.textContent = "";
    var sorted = warnings.slice().sort(function (a, b) {
      return (RANK[a.level] - RANK[b.level]) || (Date.parse(b.changed_at) - Date.parse(a.changed_at));
    });
    if (!sorted.length) list.appendChild(node("li", "ioc-muted", cfg.apps.warning ? T.none_warnings : T.forbidden));
    sorted.slice(0, 30).forEach(function (w) {
      var li = node("li");
      li.dataset.warning = w.id;
      var a = node("a");
      a.href = "/warning/warnings/" + w.id;
      var chip = node("span", "ioc-chip", T.levels[w.level] || w.level);
      chip.style.setProperty("--c", LEVELS[w.level] || NEUTRAL);
      a.appendChild(chip);
      a.appendChild(node("span", "ioc-item-title", w.title));
      a.appendChild(node("span", "ioc-item-meta", (names[w.district] || "") + " " + shortFormat.format(new Date(w.changed_at))));
      li.appendChild(a);
      if (!firstLoad && !seen["w" + w.id + w.level]) li.classList.add("ioc-new");
      list.appendChild(li);
    });
    if (!warningLayer) return;
    warningLayer.clearLayers();
    sorted.slice().reverse().forEach(function (w) {  // the highest level drawn last, on top
      var at = warningPoint(w);
      if (!at) return;
      var size = w.level === "red" ? 18 : 14;
      var icon = L.divIcon({ className: "ioc-pulse", html: "<i></i>", iconSize: [size, size] });
      var marker = L.marker(at, { icon: icon, pane: "warnings", title: w.title, riseOnHover: true });
      marker.on("add", function () {
        var el = marker.getElement();
        if (el) { el.style.setProperty("--c", LEVELS[w.level] || NEUTRAL); el.dataset.warning = w.id; el.dataset.level = w.level; }
      });
      marker.bindTooltip((T.levels[w.level] || w.level) + " · " + w.title);
      marker.on("click", function () { window.location.href = "/warning/warnings/" + w.id; });
      warningLayer.addLayer(marker);
    });
  }

  function isOpen(e) { return !e.closed_at && ["closed", "cancelled", "rated"].indexOf(e.state) < 0; }

  function drawEvents() {
    var b = document.querySelector('.ioc-kpi[data-kpi="events"] b');
    if (b) b.textContent = cfg.apps.command ? String(events.length) : "—";
    document.getElementById("ioc-events-count").textContent = cfg.apps.command ? String(events.length) : "";
    var list = document.getElementById("ioc-events");
    list.textContent = "";
    if (!events.length) list.appendChild(node("li", "ioc-muted", cfg.apps.command ? T.none_events : T.forbidden));
    events.slice(0, 30).forEach(function (e) {
      var li = node("li");
      li.dataset.event = e.id;
      var a = node("a");
      a.href = "/command/events/" + e.id;
      a.appendChild(node("span", "ioc-chip ioc-event-chip", e.number));
      a.appendChild(node("span", "ioc-item-title", e.title));
      a.appendChild(node("span", "ioc-item-meta", (names[e.district] || "") + " " + shortFormat.format(new Date(e.updated_at))));
      li.appendChild(a);
      if (!firstLoad && !seen["e" + e.id + e.state]) li.classList.add("ioc-new");
      list.appendChild(li);
    });
    if (!eventLayer) return;
    eventLayer.clearLayers();
    events.forEach(function (e) {
      if (e.lat === null || e.lon === null || e.lat === undefined) return;
      var icon = L.divIcon({ className: "ioc-event-marker", html: "<i></i>", iconSize: [14, 14] });
      var marker = L.marker([e.lat, e.lon], { icon: icon, pane: "warnings", title: e.title });
      marker.bindTooltip(e.number + " · " + e.title);
      marker.on("click", function () { window.location.href = "/command/events/" + e.id; });
      eventLayer.addLayer(marker);
    });
  }

  function drawTicker() {
    var items = [];
    warnings.forEach(function (w) { items.push({ kind: "w", at: w.changed_at, item: w }); });
    events.forEach(function (e) { items.push({ kind: "e", at: e.updated_at, item: e }); });
    items.sort(function (a, b) { return Date.parse(b.at) - Date.parse(a.at); });
    items = items.slice(0, 16);
    var ul = document.getElementById("ioc-ticker");
    ul.textContent = "";
    ul.classList.remove("ioc-scroll");
    if (!items.length) { ul.appendChild(node("li", "ioc-muted", T.none)); return; }
    function add(entry, copy) {
      var li = node("li");
      var a = node("a");
      var x = entry.item;
      if (entry.kind === "w") {
        a.href = "/warning/warnings/" + x.id;
        var chip = node("span", "ioc-chip", T.levels[x.level] || x.level);
        chip.style.setProperty("--c", LEVELS[x.level] || NEUTRAL);
        a.appendChild(chip);
        if (!copy) li.dataset.warning = x.id;
      } else {
        a.href = "/command/events/" + x.id;
        a.appendChild(node("span", "ioc-chip ioc-event-chip", T.event));
        if (!copy) li.dataset.event = x.id;
      }
      a.appendChild(node("time", null, timeFormat.format(new Date(entry.at))));
      a.appendChild(node("span", null, (names[x.district] ? names[x.district] + " · " : "") + x.title));
      li.appendChild(a);
      if (copy) li.setAttribute("aria-hidden", "true");
      ul.appendChild(li);
    }
    items.forEach(function (e) { add(e, false); });
    var track = ul.parentNode;
    if (ul.scrollWidth > track.clientWidth) {  // scroll when it does not fit: a second copy makes it seamless
      items.forEach(function (e) { add(e, true); });
      ul.style.setProperty("--dur", Math.max(30, items.length * 6) + "s");
      ul.classList.add("ioc-scroll");
    }
  }

  function remember() {
    warnings.forEach(function (w) { seen["w" + w.id + w.level] = true; });
    events.forEach(function (e) { seen["e" + e.id + e.state] = true; });
  }

  function loadWarnings() {
    if (!cfg.apps.warning) { drawWarnings(); return Promise.resolve(); }
    var url = "/api/warning/warnings?status=active&limit=200" + (district ? "&district=" + district : "");
    return getJson(url).then(function (page) { warnings = page.items; })
      .catch(function () { warnings = []; })
      .then(function () { drawWarnings(); drawTicker(); });
  }
  function loadEvents() {
    if (!cfg.apps.command) { drawEvents(); return Promise.resolve(); }
    var url = "/api/command/events?limit=200" + (district ? "&district=" + district : "");
    return getJson(url).then(function (page) { events = page.items.filter(isOpen); })
      .catch(function () { events = []; })
      .then(function () { drawEvents(); drawTicker(); });
  }
  function loadVitals(flash) {
    var url = "/api/indicators/screen" + (district ? "?district=" + district : "");
    return getJson(url).then(function (body) { data = body; drawVitals(flash); }).catch(function () { return null; });
  }

  // --- pushed changes -------------------------------------------------------------------------------

  var live = document.getElementById("ioc-live");
  var liveText = document.getElementById("ioc-live-text");
  function setLive(state) {
    live.dataset.state = state;
    liveText.textContent = state === "live" ? T.live : state === "offline" ? T.offline : T.connecting;
  }
  var pending = {};
  var timer = null;
  function soon(what) {  // changes arriving together are loaded once
    pending[what] = true;
    if (timer) return;
    timer = setTimeout(function () {
      var todo = pending;
      pending = {};
      timer = null;
      var jobs = [];
      if (todo.vitals) jobs.push(loadVitals(true));
      if (todo.warnings) jobs.push(loadWarnings());
      if (todo.events) jobs.push(loadEvents());
      if (todo.layers) cfg.map.layers.forEach(function (l) { jobs.push(loadLayer(l)); });
      Promise.all(jobs).then(function () {
        remember();
        document.body.dataset.pushed = String(Date.now());
      });
    }, 60);
  }
  var source = null;
  function connect() {
    if (typeof EventSource === "undefined") return;
    source = new EventSource("/api/indicators/stream" + (district ? "?district=" + district : ""));
    source.addEventListener("open", function () { setLive("live"); });
    source.addEventListener("hello", function () { setLive("live"); });
    source.addEventListener("error", function () {
      setLive("offline");
      if (source.readyState === EventSource.CLOSED) {  // refused (signed out, restarted): try again later
        source = null;
        setTimeout(connect, 5000);
      }
    });
    source.addEventListener("indicators", function () { soon("vitals"); soon("layers"); });
    source.addEventListener("warning", function () { soon("warnings"); });
    source.addEventListener("event", function () { soon("events"); });
  }

  // --- start ----------------------------------------------------------------------------------------

  drawSigns(false);
  setupMap();
  drawVitals(false);
  var ready = Promise.all([loadWarnings(), loadEvents()]);
  ready.then(function () {
    firstLoad = false;
    remember();
    document.body.dataset.ready = "1";
    if (window.performance && performance.mark) performance.mark("ioc-ready");
  });
  connect();
  setInterval(function () { soon("vitals"); soon("warnings"); soon("events"); soon("layers"); }, cfg.refresh_ms || 60000);
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      charts.forEach(function (c) { c.resize(); });
      drawGauges();
      if (map) { map.invalidateSize(); map.fitBounds(focusBounds || bounds, { padding: [12, 12] }); }
    }, 150);
  });
})();
