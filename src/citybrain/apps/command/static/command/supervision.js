/* The supervision board's chart: overdue, escalated and due-soon events of each responsible department. */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  document.querySelectorAll("[data-supervision-chart]").forEach(function (el) {
    var chart = readJson(el.getAttribute("data-supervision-chart"));
    if (!chart || typeof echarts === "undefined") return;
    var l = chart.labels;
    echarts.init(el).setOption({
      animation: false,
      grid: { left: 12, right: 24, top: 36, bottom: 8, containLabel: true },
      legend: { top: 0, data: [l.overdue, l.escalated, l.due_soon] },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: chart.names, axisLabel: { interval: 0, rotate: chart.names.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { color: "#e6ebf0" } } },
      series: [
        { name: l.overdue, type: "bar", data: chart.overdue, barMaxWidth: 22, itemStyle: { color: "#c0392b" } },
        { name: l.escalated, type: "bar", data: chart.escalated, barMaxWidth: 22, itemStyle: { color: "#e67e22" } },
        { name: l.due_soon, type: "bar", data: chart.due_soon, barMaxWidth: 22, itemStyle: { color: "#bf8700" } }
      ]
    });
  });
})();
