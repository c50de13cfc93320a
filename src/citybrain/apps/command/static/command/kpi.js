/* The KPI page's chart: the composite score of each object as bars, its closing rates as lines. */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  document.querySelectorAll("[data-kpi-chart]").forEach(function (el) {
    var chart = readJson(el.getAttribute("data-kpi-chart"));
    if (!chart || typeof echarts === "undefined") return;
    var l = chart.labels;
    echarts.init(el).setOption({
      animation: false,
      grid: { left: 12, right: 24, top: 36, bottom: 8, containLabel: true },
      legend: { top: 0, data: [l.composite, l.closing, l.on_time, l.satisfaction] },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: chart.names, axisLabel: { interval: 0, rotate: chart.names.length > 8 ? 30 : 0 } },
      yAxis: { type: "value", min: 0, max: 100, splitLine: { lineStyle: { color: "#e6ebf0" } } },
      series: [
        { name: l.composite, type: "bar", data: chart.composite, barMaxWidth: 22, itemStyle: { color: "#0b5cad" } },
        { name: l.closing, type: "line", data: chart.closing, connectNulls: false },
        { name: l.on_time, type: "line", data: chart.on_time, connectNulls: false },
        { name: l.satisfaction, type: "line", data: chart.satisfaction, connectNulls: false }
      ]
    });
  });
})();
