/* Device pages: history charts of a device, the ingest-rate charts (redrawn after each refresh).
 *
 * Chart times arrive as China-time wall clock read as UTC; the charts draw in UTC mode so every
 * browser shows China Standard Time whatever its own time zone.
 */
(function () {
  "use strict";

  var BLUE = "#0b5cad";
  var PALETTE = ["#0b5cad", "#2e7d32", "#b35c00", "#c62828", "#6a1b9a", "#00838f", "#5d4037", "#ad1457",
    "#455a64", "#9e9d24", "#283593", "#00695c", "#ef6c00"];
  var HOUR = 3600 * 1000;

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function stamp(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  var drawn = [];

  function draw(el, option) {
    var old = echarts.getInstanceByDom(el);
    if (old) old.dispose();
    var instance = echarts.init(el, null, { renderer: "canvas" });
    instance.setOption(option);
    el.classList.add("chart-ready");
    drawn.push(instance);
  }

  function drawHistory() {
    var charts = readJson("device-charts");
    if (!charts || typeof echarts === "undefined") return;
    charts.forEach(function (chart) {
      var el = document.querySelector('[data-chart="' + chart.id + '"]');
      if (!el) return;
      var unit = chart.unit ? " " + escapeHtml(chart.unit) : "";
      var single = chart.points.length === 1;
      draw(el, {
        useUTC: true,
        animation: false,
        color: [BLUE],
        grid: { left: 12, right: 18, top: 16, bottom: 8, containLabel: true },
        tooltip: {
          trigger: "axis",
          formatter: function (params) {
            var p = params[0];
            return stamp(p.value[0]) + "<br><strong>" + escapeHtml(p.value[1]) + "</strong>" + unit;
          }
        },
        xAxis: {
          type: "time",
          axisLine: { lineStyle: { color: "#9aa8b6" } },
          min: single ? chart.points[0][0] - HOUR : null,
          max: single ? chart.points[0][0] + HOUR : null
        },
        yAxis: { type: "value", scale: true, splitLine: { lineStyle: { color: "#e6ebf0" } } },
        series: [{
          type: "line", data: chart.points, showSymbol: chart.points.length <= 60, symbolSize: 6,
          lineStyle: { width: 2 }, areaStyle: { opacity: 0.08 }
        }]
      });
    });
  }

  function series(times, values) {
    return times.map(function (t, i) { return [t, values[i]]; });
  }

  function drawRates() {
    var data = readJson("rate-data");
    if (!data || typeof echarts === "undefined") return;
    var base = {
      useUTC: true,
      animation: false,
      grid: { left: 12, right: 18, top: 34, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      xAxis: { type: "time", axisLine: { lineStyle: { color: "#9aa8b6" } } },
      yAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { color: "#e6ebf0" } } }
    };
    var flow = document.querySelector('[data-rate-chart="flow"]');
    if (flow) {
      draw(flow, Object.assign({}, base, {
        color: [BLUE, "#2e7d32"],
        legend: { top: 0, data: data.series.map(function (s) { return s.name; }) },
        series: data.series.map(function (s) {
          return { name: s.name, type: "line", showSymbol: false, data: series(data.times, s.values), areaStyle: { opacity: 0.06 } };
        })
      }));
    }
    var rejected = document.querySelector('[data-rate-chart="rejected"]');
    if (rejected) {
      draw(rejected, Object.assign({}, base, {
        color: PALETTE.slice(2).concat(PALETTE.slice(0, 2)),
        legend: { top: 0, type: "scroll", data: data.rejected.map(function (s) { return s.name; }) },
        series: data.rejected.length ? data.rejected.map(function (s) {
          return { name: s.name, type: "bar", stack: "rejected", data: series(data.times, s.values) };
        }) : [{ type: "bar", data: series(data.times, data.times.map(function () { return 0; })) }]
      }));
    }
  }

  function start() {
    drawHistory();
    drawRates();
    window.addEventListener("resize", function () { drawn.forEach(function (c) { if (!c.isDisposed()) c.resize(); }); });
    // the rate panel refreshes itself (htmx); its charts are drawn again from the new data
    document.body.addEventListener("htmx:afterSettle", function () {
      drawn = drawn.filter(function (c) { return !c.isDisposed(); });
      drawRates();
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
