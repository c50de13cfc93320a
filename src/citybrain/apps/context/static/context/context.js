/* Entity browser: Leaflet maps and ECharts history charts, drawn from JSON embedded in the page.
 *
 * No tile server is reachable, so maps draw the features over a light grid that pans with the map.
 * Chart times arrive as China-time wall clock read as UTC; the charts draw in UTC mode so every
 * browser shows China Standard Time whatever its own time zone.
 */
(function () {
  "use strict";

  var BLUE = "#0b5cad";
  var LABELS_UP_TO = 15;
  var HOUR = 3600 * 1000;

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function line(parent, tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    el.textContent = text;
    parent.appendChild(el);
    return el;
  }

  // Name (or id) linking to the entity's page, then the id and the type; text only, never HTML.
  function popupFor(props) {
    var box = document.createElement("div");
    box.className = "map-popup";
    var title = line(box, props.href ? "a" : "strong", "map-popup-title", props.label || props.id);
    if (props.href) title.href = props.href;
    if (props.label && props.href) line(box, "code", "map-popup-id", props.id);
    if (props.type) line(box, "div", "map-popup-type", props.type);
    return box;
  }

  function drawMap() {
    var el = document.getElementById("entity-map");
    var features = readJson("entity-map-data");
    if (!el || !features || typeof L === "undefined") return;
    var map = L.map(el, { attributionControl: false, zoomSnap: 0.5, scrollWheelZoom: false });
    var Grid = L.GridLayer.extend({
      createTile: function () {
        var tile = document.createElement("div");
        tile.className = "map-grid-tile";
        return tile;
      }
    });
    new Grid({ tileSize: 128 }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    // Names stay on the map while there are few features; with many, they show on hover.
    var permanent = features.length <= LABELS_UP_TO;
    var layer = L.geoJSON(
      features.map(function (f) { return { type: "Feature", geometry: f.geometry, properties: f }; }),
      {
        pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, { radius: 7 }); },
        style: function (feature) {
          var point = /Point$/.test(feature.geometry.type);
          return point
            ? { color: "#fff", weight: 2, fillColor: BLUE, fillOpacity: 0.9 }
            : { color: BLUE, weight: 2, fillColor: BLUE, fillOpacity: 0.15 };
        },
        onEachFeature: function (feature, lyr) {
          lyr.bindPopup(popupFor(feature.properties));
          if (feature.properties.label) {
            var label = document.createElement("span");
            label.textContent = feature.properties.label;
            lyr.bindTooltip(label, {
              permanent: permanent, direction: "right", offset: [8, 0], className: "map-label"
            });
          }
        }
      }
    ).addTo(map);
    var bounds = layer.getBounds();
    if (!bounds.isValid()) {
      map.setView([31.47, 104.68], 11); // Mianyang
    } else if (bounds.getNorthEast().equals(bounds.getSouthWest())) {
      map.setView(bounds.getCenter(), 14);
    } else {
      map.fitBounds(bounds.pad(0.2), { maxZoom: 15 });
    }
    el.classList.add("map-ready");
  }

  // ECharts tooltips are HTML; units come from the entities, so they are escaped.
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

  function drawCharts() {
    var charts = readJson("entity-charts");
    if (!charts || typeof echarts === "undefined") return;
    var drawn = [];
    charts.forEach(function (chart) {
      var el = document.querySelector('[data-chart="' + chart.id + '"]');
      if (!el) return;
      var unit = chart.unit ? " " + escapeHtml(chart.unit) : "";
      var single = chart.points.length === 1;
      var instance = echarts.init(el, null, { renderer: "canvas" });
      instance.setOption({
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
          // a single value sits in the middle of a two-hour window rather than of an arbitrary span
          min: single ? chart.points[0][0] - HOUR : null,
          max: single ? chart.points[0][0] + HOUR : null
        },
        yAxis: { type: "value", scale: true, splitLine: { lineStyle: { color: "#e6ebf0" } } },
        series: [{
          type: "line",
          data: chart.points,
          showSymbol: chart.points.length <= 60,
          symbolSize: 6,
          lineStyle: { width: 2 },
          areaStyle: { opacity: 0.08 }
        }]
      });
      el.classList.add("chart-ready");
      drawn.push(instance);
    });
    window.addEventListener("resize", function () {
      drawn.forEach(function (c) { c.resize(); });
    });
  }

  function autosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  function start() {
    autosubmit();
    drawMap();
    drawCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
