/* The command pages' map: the districts and one marker per event with a location (overdue ones red).
 * Every text from the server is put into the page as text, never as HTML. */
(function () {
  "use strict";

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function start() {
    var el = document.getElementById("command-map");
    var cfg = readJson("command-map-config");
    if (!el || !cfg || typeof L === "undefined") return;
    var zh = cfg.locale === "zh_CN";
    var b = cfg.bounds;
    var map = L.map(el, { zoomSnap: 0.25, minZoom: 7, maxZoom: 17, attributionControl: false });
    map.fitBounds(L.latLngBounds([b[1], b[0]], [b[3], b[2]]), { padding: [8, 8] });
    L.geoJSON(cfg.districts, {
      style: function () { return { color: "#ffffff", weight: 1.2, fillColor: "#dce9f6", fillOpacity: 0.95 }; },
      onEachFeature: function (f, lyr) { lyr.bindTooltip(zh ? f.properties.name_zh : f.properties.name_en, { sticky: true }); }
    }).addTo(map);
    var points = [];
    (cfg.markers || []).forEach(function (m) {
      var marker = L.circleMarker([m.lat, m.lon], {
        radius: 7, color: "#ffffff", weight: 2, fillColor: m.overdue ? "#c0392b" : "#1f6feb", fillOpacity: 0.9
      }).addTo(map);
      var box = document.createElement("div");
      var link = document.createElement("a");
      link.href = "/command/events/" + m.id;
      link.textContent = m.number;
      box.appendChild(link);
      var title = document.createElement("div");
      title.textContent = m.title;
      box.appendChild(title);
      marker.bindPopup(box);
      points.push([m.lat, m.lon]);
    });
    if (points.length === 1 && cfg.markers.length === 1) map.setView(points[0], 14);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
