/* The traffic page: the city's index gauge, the day's trend and the map of segments coloured by grade.
 *
 * Chart times arrive as China-time wall clock read as UTC; the charts draw in UTC mode so every
 * browser shows China Standard Time whatever its own time zone.
 */
(function () {
  "use strict";

  var NO_DATA = "#9aa8b6";

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function drawGauge(el, chart) {
    var stops = chart.bands.map(function (band) { return [band[0] / 10, band[1]]; });
    echarts.init(el).setOption({
      animation: false,
      series: [{
        type: "gauge", min: 0, max: 10, splitNumber: 5, radius: "95%",
        axisLine: { lineStyle: { width: 14, color: stops } },
        pointer: { width: 5 },
        axisTick: { show: false },
        splitLine: { length: 14, lineStyle: { color: "#fff", width: 2 } },
        axisLabel: { distance: 18, color: "#4a5a6a" },
        detail: { valueAnimation: false, formatter: function (v) { return v.toFixed(1); }, fontSize: 26, offsetCenter: [0, "55%"] },
        title: { offsetCenter: [0, "80%"], fontSize: 14 },
        data: [{ value: chart.tpi, name: chart.grade || "" }]
      }]
    });
  }

  function gradeOf(value) {  // the network grade of a TPI (GB/T 33171 §8.2 表3)
    var found = null;
    chartData.grades.forEach(function (g, i) { if (i === 0 || value >= chartData.bands[i - 1][0]) found = g; });
    return found;
  }

  var chartData = null;

  function drawTrend(el, chart) {
    var bands = [];
    var low = 0;
    chart.bands.forEach(function (band) {
      bands.push([{ yAxis: low, itemStyle: { color: band[1], opacity: 0.08 } }, { yAxis: band[0] }]);
      low = band[0];
    });
    echarts.init(el).setOption({
      useUTC: true,
      animation: false,
      grid: { left: 12, right: 18, top: 16, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        formatter: function (items) {  // "HH:mm  TPI 4.2 轻度拥堵"
          var p = items[0];
          var d = new Date(p.value[0]);
          var hm = String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
          var grade = gradeOf(p.value[1]);
          return hm + "  TPI " + p.value[1].toFixed(1) + (grade ? " " + grade.name : "");
        }
      },
      // the whole day (China time) on the axis, so the trend reads as "today" however little it holds
      xAxis: { type: "time", min: chart.day_start, max: chart.day_end, axisLabel: { formatter: "{HH}:{mm}" }, axisLine: { lineStyle: { color: "#9aa8b6" } } },
      yAxis: { type: "value", min: 0, max: 10, interval: 2, splitLine: { lineStyle: { color: "#e6ebf0" } } },
      series: [{
        type: "line", data: chart.trend, showSymbol: chart.trend.length < 60, lineStyle: { color: "#4a5a6a" },
        markArea: { silent: true, data: bands }
      }]
    });
  }

  function drawMap(el, chart) {
    if (typeof L === "undefined") return;
    var map = L.map(el, { preferCanvas: true, zoomControl: true, attributionControl: false });
    map.setView([31.47, 104.72], 12);
    fetch(chart.segments, { credentials: "same-origin", headers: { Accept: "application/geo+json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (collection) {
        if (!collection || !collection.features.length) return;
        var layer = L.geoJSON(collection, {
          style: function (f) {
            return { color: f.properties.color || NO_DATA, weight: f.properties.color ? 5 : 3, opacity: 0.95, lineCap: "round" };
          },
          onEachFeature: function (f, lyr) {
            var p = f.properties;
            var text = p.name + (p.grade ? " · " + p.grade.name + " · TTI " + p.tti.toFixed(2) : "");
            lyr.bindTooltip(text, { sticky: true });
          }
        }).addTo(map);
        map.fitBounds(layer.getBounds(), { padding: [10, 10] });
      });
  }

  function init() {
    var chart = readJson("traffic-chart");
    if (!chart) return;
    chartData = chart;
    if (typeof echarts !== "undefined") {
      document.querySelectorAll("[data-tpi-gauge]").forEach(function (el) { if (chart.tpi !== null) drawGauge(el, chart); });
      document.querySelectorAll("[data-tpi-trend]").forEach(function (el) { if (chart.trend.length) drawTrend(el, chart); });
    }
    document.querySelectorAll("[data-tpi-map]").forEach(function (el) { drawMap(el, chart); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
