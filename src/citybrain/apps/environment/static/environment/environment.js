/* Air-quality charts: hourly AQI bars coloured by level, and 1-hour mean concentrations.
 *
 * Chart times arrive as China-time wall clock read as UTC; the charts draw in UTC mode so every
 * browser shows China Standard Time whatever its own time zone.
 */
(function () {
  "use strict";

  var HOUR = 3600 * 1000;
  var drawn = [];

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function draw(el, option) {
    var old = echarts.getInstanceByDom(el);
    if (old) old.dispose();
    var instance = echarts.init(el, null, { renderer: "canvas" });
    instance.setOption(option);
    drawn.push(instance);
  }

  function base(points) {
    var single = points.length === 1;
    return {
      useUTC: true,
      animation: false,
      grid: { left: 12, right: 18, top: 16, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis" },
      xAxis: {
        type: "time",
        min: single ? points[0][0] - HOUR : null,
        max: single ? points[0][0] + HOUR : null,
        axisLine: { lineStyle: { color: "#9aa8b6" } }
      },
      yAxis: { type: "value", scale: true, splitLine: { lineStyle: { color: "#e6ebf0" } } }
    };
  }

  function drawAqi() {
    if (typeof echarts === "undefined") return;
    document.querySelectorAll("[data-aqi-chart]").forEach(function (el) {
      var chart = readJson(el.getAttribute("data-aqi-chart"));
      if (!chart || !chart.points.length) return;
      var option = base(chart.points.map(function (p) { return p.value; }));
      option.yAxis.scale = false;
      option.yAxis.minInterval = 1;
      option.series = [{ type: "bar", barMaxWidth: 18, data: chart.points }];
      draw(el, option);
    });
  }

  function drawPollutants() {
    var charts = readJson("pollutant-charts");
    if (!charts || typeof echarts === "undefined") return;
    charts.forEach(function (chart) {
      var el = document.querySelector('[data-pollutant-chart="' + chart.id + '"]');
      if (!el) return;
      var option = base(chart.points);
      option.color = ["#0b5cad"];
      option.series = [{ type: "line", data: chart.points, showSymbol: chart.points.length <= 48, areaStyle: { opacity: 0.08 } }];
      draw(el, option);
    });
  }

  function start() {
    drawAqi();
    drawPollutants();
    window.addEventListener("resize", function () { drawn.forEach(function (c) { if (!c.isDisposed()) c.resize(); }); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
