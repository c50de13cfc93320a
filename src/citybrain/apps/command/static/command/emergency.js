/* The emergency command map: the districts, the incident (in its level's colour) and every resource
 * coloured by status, the nearest ones drawn larger. Every text from the server is put in as text. */
(function () {
  "use strict";

  var COLORS = { available: "#1a7f37", dispatched: "#e67e22", maintenance: "#8c959f" };

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function start() {
    var el = document.getElementById("emergency-map");
    var cfg = readJson("emergency-map-config");
    if (!el || !cfg || typeof L === "undefined") return;
    var zh = cfg.locale === "zh_CN";
    var b = cfg.bounds;
    var map = L.map(el, { zoomSnap: 0.25, minZoom: 7, maxZoom: 17, attributionControl: false });
    map.fitBounds(L.latLngBounds([b[1], b[0]], [b[3], b[2]]), { padding: [8, 8] });
    L.geoJSON(cfg.districts, {
      style: function () { return { color: "#ffffff", weight: 1.2, fillColor: "#dce9f6", fillOpacity: 0.95 }; },
      onEachFeature: function (f, lyr) { lyr.bindTooltip(zh ? f.properties.name_zh : f.properties.name_en, { sticky: true }); }
    }).addTo(map);
    var nearest = {};
    (cfg.nearest || []).forEach(function (id) { nearest[id] = true; });
    (cfg.resources || []).forEach(function (r) {
      var marker = L.circleMarker([r.lat, r.lon], {
        radius: nearest[r.id] ? 8 : 5, color: "#ffffff", weight: nearest[r.id] ? 2.5 : 1.5,
        fillColor: COLORS[r.status] || "#57606a", fillOpacity: 0.9
      }).addTo(map);
      var box = document.createElement("div");
      box.textContent = r.name;
      marker.bindTooltip(box);
    });
    if (cfg.incident) {
      var i = cfg.incident;
      var spot = L.circleMarker([i.lat, i.lon], {
        radius: 11, color: "#1f2328", weight: 2, fillColor: i.color, fillOpacity: 0.95
      }).addTo(map);
      var label = document.createElement("strong");
      label.textContent = i.title;
      spot.bindPopup(label);
      map.setView([i.lat, i.lon], 13);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
