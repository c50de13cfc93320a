/* Air-quality charts: hourly AQI bars coloured by level, 1-hour mean concentrations, and the forecasts.
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

  // The platform's forecast: the observed hours, the forecast mean (dashed) and its 80 % band, drawn as
  // the lower bound plus a stacked, filled width.
  function drawForecasts() {
    var charts = readJson("forecast-charts");
    if (!charts || typeof echarts === "undefined") return;
    var T = readJson("forecast-text") || {};
    charts.forEach(function (chart) {
      var el = document.querySelector('[data-forecast-chart="' + chart.id + '"]');
      if (!el) return;
      var width = chart.upper.map(function (p, i) { return [p[0], Math.round((p[1] - chart.lower[i][1]) * 10) / 10]; });
      var option = base(chart.observed.concat(chart.mean));
      option.color = ["#0b5cad", "#d9480f"];
      option.legend = { top: 0, right: 8, data: [T.observed, T.forecast, T.band] };
      option.grid.top = 28;
      option.tooltip.formatter = function (items) {
        var lines = [];
        items.forEach(function (item) {
          if (item.seriesId === "band-low") return;
          var value = item.seriesId === "band" ? chart.lower[item.dataIndex][1] + "–" + chart.upper[item.dataIndex][1] : item.value[1];
          lines.push(item.marker + item.seriesName + " " + value);
        });
        return lines.join("<br>");
      };
      option.series = [
        { id: "observed", name: T.observed, type: "line", data: chart.observed, showSymbol: false },
        { id: "forecast", name: T.forecast, type: "line", data: chart.mean, showSymbol: false, lineStyle: { type: "dashed" } },
        { id: "band-low", type: "line", data: chart.lower, stack: "band", symbol: "none", lineStyle: { opacity: 0 }, silent: true },
        { id: "band", name: T.band, type: "line", data: width, stack: "band", symbol: "none", lineStyle: { opacity: 0 },
          areaStyle: { color: "#d9480f", opacity: 0.16 }, itemStyle: { color: "#f5b99c" } }
      ];
      draw(el, option);
      el.setAttribute("data-drawn", "true");
    });
  }

  function start() {
    drawAqi();
    drawPollutants();
    drawForecasts();
    window.addEventListener("resize", function () { drawn.forEach(function (c) { if (!c.isDisposed()) c.resize(); }); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
