/* An indicator's page: the districts' values as bars and the history as a line.
 *
 * Chart times arrive as China-time wall clock read as UTC; the charts draw in UTC mode so every
 * browser shows China Standard Time whatever its own time zone.
 */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function fmt(chart) {
    return function (v) { return (typeof v === "number" ? v.toFixed(chart.decimals) : v) + (chart.unit || ""); };
  }

  function drawBars(el, chart) {
    echarts.init(el).setOption({
      animation: false,
      grid: { left: 12, right: 24, top: 8, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", valueFormatter: fmt(chart) },
      xAxis: { type: "value", splitLine: { lineStyle: { color: "#e6ebf0" } } },
      yAxis: { type: "category", inverse: true, data: chart.bars.map(function (b) { return b.name; }) },
      series: [{ type: "bar", data: chart.bars, barMaxWidth: 18 }]
    });
  }

  function drawTrend(el, chart) {
    var lines = [];
    if (chart.thresholds) {
      lines.push({ yAxis: chart.thresholds.warn, lineStyle: { color: chart.colors.warn } });
      lines.push({ yAxis: chart.thresholds.bad, lineStyle: { color: chart.colors.bad } });
    }
    echarts.init(el).setOption({
      useUTC: true,
      animation: false,
      grid: { left: 12, right: 24, top: 16, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", valueFormatter: fmt(chart) },
      xAxis: { type: "time", axisLine: { lineStyle: { color: "#9aa8b6" } } },
      yAxis: { type: "value", scale: true, splitLine: { lineStyle: { color: "#e6ebf0" } } },
      series: [{
        type: "line", data: chart.trend, showSymbol: chart.trend.length < 60, lineStyle: { color: "#0b5cad" },
        markLine: { silent: true, symbol: "none", data: lines, label: { show: false } }
      }]
    });
  }

  document.querySelectorAll("[data-ind-bars]").forEach(function (el) {
    var chart = readJson(el.getAttribute("data-ind-bars"));
    if (chart && typeof echarts !== "undefined") drawBars(el, chart);
  });
  document.querySelectorAll("[data-ind-trend]").forEach(function (el) {
    var chart = readJson(el.getAttribute("data-ind-trend"));
    if (chart && typeof echarts !== "undefined") drawTrend(el, chart);
  });
})();
