/* The one map of Mianyang: district boundaries as the base, main roads, and every layer's features.
 *
 * No tile server is reachable by default, so the base is drawn from the boundaries alone: each district
 * filled in a soft colour with its name, the city outline over a neutral background. A tile layer is
 * added under them when one is configured. Point features are clustered (leaflet.markercluster, chunked
 * loading) so tens of thousands stay smooth; popups are built on demand. Layers are reloaded every
 * refresh period and updated in place (markers added, moved or removed by id), so the view never jumps.
 * Every text from the server is put into the page as text, never as HTML.
 */
(function () {
  "use strict";

  var FILLS = ["#dce9f6", "#e2f0dc", "#f5ead6", "#ebe2f2", "#d9efec", "#f6e0df", "#e8edd5", "#f1e5da", "#dde3f1"];
  var OUTLINE = "#3f5873";
  var UNITS = {
    GQ: "μg/m³", GP: "mg/m³", CEL: "°C", P1: "%", "59": "ppm", "61": "ppb", KMH: "km/h", MTS: "m/s",
    MMT: "mm", CMT: "cm", MTR: "m", KMT: "km", A97: "hPa", KPA: "kPa", "2N": "dB", LUX: "lx", WTT: "W",
    KWT: "kW", KWH: "kWh", VLT: "V", AMP: "A", LTR: "L", MTQ: "m³", MQH: "m³/h", MQS: "m³/s", KGM: "kg"
  };
  var ROAD_STYLE = {
    expressway: { color: "#d9722e", weight: 4.5 },
    arterial: { color: "#eeac3a", weight: 3.2 },
    secondary: { color: "#f3cd80", weight: 2.4 }
  };

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function format(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (m, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : m;
    });
  }

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function halo(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  var cfg = readJson("geo-map-config");
  var T = readJson("geo-map-text") || {};
  var el = document.getElementById("geo-map");
  if (!cfg || !el || typeof L === "undefined") return;
  var zh = cfg.locale === "zh_CN";
  var timeFormat = new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  var clockFormat = new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", {
    timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  var numberFormat = new Intl.NumberFormat(zh ? "zh-CN" : "en-GB", { maximumFractionDigits: 2 });

  function when(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : timeFormat.format(d);
  }

  function box(b) { return L.latLngBounds([b[1], b[0]], [b[3], b[2]]); }

  // --- the map and its base -----------------------------------------------------------------------

  var cityBounds = box(cfg.bounds);
  var map = L.map(el, {
    zoomSnap: 0.25, zoomDelta: 0.5, wheelPxPerZoomLevel: 90, minZoom: 7, maxZoom: 18,
    maxBounds: cityBounds.pad(0.6), maxBoundsViscosity: 0.8, attributionControl: !!cfg.tile_url
  });
  [["geo-districts", 210], ["geo-mask", 220], ["geo-outline", 230], ["geo-roads", 380], ["geo-labels", 450]]
    .forEach(function (pane) { map.createPane(pane[0]).style.zIndex = pane[1]; });
  map.getPane("geo-labels").style.pointerEvents = "none";
  var renderers = {
    districts: L.canvas({ pane: "geo-districts", padding: 0.3 }),
    outline: L.canvas({ pane: "geo-outline", padding: 0.3 }),
    roads: L.canvas({ pane: "geo-roads", padding: 0.3, tolerance: 4 }),
    shapes: L.canvas({ padding: 0.3, tolerance: 3 })
  };
  L.control.scale({ imperial: false, position: "bottomright" }).addTo(map);

  if (cfg.tile_url) {
    map.attributionControl.setPrefix(false);
    L.tileLayer(cfg.tile_url, { attribution: escapeHtml(cfg.tile_attribution || ""), maxZoom: 18 }).addTo(map);
    // outside the city, the tiles fade behind a veil
    var rings = [[[-89, -179], [-89, 179], [89, 179], [89, -179]]];
    L.geoJSON(cfg.city, { coordsToLatLng: L.GeoJSON.coordsToLatLng }).eachLayer(function (lyr) {
      var latlngs = lyr.getLatLngs();
      (L.LineUtil.isFlat(latlngs[0]) ? [latlngs] : latlngs).forEach(function (poly) { rings.push(poly[0]); });
    });
    L.polygon(rings, {
      pane: "geo-mask", renderer: L.canvas({ pane: "geo-mask" }), stroke: false,
      fillColor: "#e9eef3", fillOpacity: 0.55, interactive: false
    }).addTo(map);
  }

  var selected = "";
  var districtBounds = {};
  var districtLayers = {};
  var districtFill = {};
  function districtStyle(feature) {
    var code = feature.properties.code;
    var on = !selected || selected === code;
    return {
      renderer: renderers.districts,
      color: selected === code ? "#0b5cad" : "#ffffff",
      weight: selected === code ? 2.4 : 1.4,
      opacity: 1,
      fillColor: districtFill[code],
      fillOpacity: cfg.tile_url ? (on ? 0.18 : 0.05) : (on ? 0.95 : 0.45)
    };
  }
  cfg.districts.features.forEach(function (f, i) { districtFill[f.properties.code] = FILLS[i % FILLS.length]; });
  var districts = L.geoJSON(cfg.districts, {
    style: districtStyle,
    onEachFeature: function (feature, lyr) {
      var code = feature.properties.code;
      districtBounds[code] = lyr.getBounds();
      districtLayers[code] = lyr;
      lyr.on("mouseover", function () {
        if (selected !== code) lyr.setStyle({ color: "#7d9bbb", weight: 2 });
      });
      lyr.on("mouseout", function () {
        districts.resetStyle(lyr);
        if (selected && districtLayers[selected]) districtLayers[selected].bringToFront();
      });
      lyr.on("click", function () { selectDistrict(selected === code ? "" : code, true); });
    }
  }).addTo(map);
  // the city outline over a soft halo
  L.geoJSON(cfg.city, {
    style: { renderer: renderers.outline, color: OUTLINE, weight: 7, opacity: 0.12, fill: false },
    interactive: false
  }).addTo(map);
  L.geoJSON(cfg.city, {
    style: { renderer: renderers.outline, color: OUTLINE, weight: 2.2, opacity: 0.9, fill: false },
    interactive: false
  }).addTo(map);

  var labels = L.layerGroup().addTo(map);
  cfg.districts.features.forEach(function (f) {
    var p = f.properties;
    var text = zh ? p.name_zh : p.name_en;
    var icon = L.divIcon({
      className: "geo-district-label", iconSize: null,
      html: "<span>" + escapeHtml(text) + "</span>"
    });
    L.marker([p.label[1], p.label[0]], {
      icon: icon, pane: "geo-labels", interactive: false, keyboard: false
    }).addTo(labels);
  });

  // --- layers -------------------------------------------------------------------------------------

  var states = {};
  var openPopup = null; // { state, id }

  // One cluster group for every layer's points, so clusters never hide one another: each cluster shows
  // its count on the colour of its largest layer, ringed by the share of each layer.
  var chunking = false;
  var clusters = L.markerClusterGroup({
    chunkedLoading: true, chunkInterval: 120, chunkDelay: 30,
    maxClusterRadius: function (zoom) { return zoom <= 13 ? 90 : zoom <= 15 ? 70 : 50; },
    showCoverageOnHover: false, spiderfyOnMaxZoom: true, disableClusteringAtZoom: 18,
    removeOutsideVisibleBounds: true, animate: true,
    chunkProgress: function (processed, total) { if (processed >= total) chunking = false; },
    iconCreateFunction: function (cluster) {
      var children = cluster.getAllChildMarkers();
      var counts = {};
      children.forEach(function (m) { counts[m.options.layerId] = (counts[m.options.layerId] || 0) + 1; });
      var ids = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a]; });
      var n = children.length;
      var stops = [];
      var at = 0;
      ids.forEach(function (id) {
        var color = states[id] ? states[id].cfg.color : "#607080";
        var next = at + (counts[id] / n) * 100;
        stops.push(color + " " + at.toFixed(2) + "% " + next.toFixed(2) + "%");
        at = next;
      });
      var main = states[ids[0]] ? states[ids[0]].cfg.color : "#607080";
      var size = n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 42 : 50;
      var label = n >= 10000 ? Math.round(n / 1000) + "k" : String(n);
      return L.divIcon({
        className: "geo-cluster",
        iconSize: [size, size],
        html: '<div style="background: conic-gradient(' + stops.join(", ") + ')"><span style="--c:' + main + '">' +
          label + "</span></div>"
      });
    }
  });
  clusters.on("click", function (e) {
    var state = states[e.layer.options.layerId];
    if (state) showPopup(state, e.layer);
  });
  clusters.addTo(map);

  function valueText(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return numberFormat.format(value);
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }

  function popupContent(state, props) {
    var wrap = node("div", "geo-popup");
    wrap.appendChild(node("div", "geo-popup-title", props.name || props.id));
    var sub = state.cfg.title + (props.district ? " · " + (districtName[props.district] || props.district) : "");
    wrap.appendChild(node("div", "geo-popup-sub", sub));
    var table = node("table");
    var keys = state.cfg.popup.length ? state.cfg.popup : Object.keys(props).filter(function (k) {
      return ["id", "type", "name", "district", "observedAt", "unitCode"].indexOf(k) < 0;
    });
    keys.forEach(function (key) {
      if (!Object.prototype.hasOwnProperty.call(props, key)) return;
      var row = node("tr");
      row.appendChild(node("th", null, key));
      var cell = node("td");
      var unit = props.unitCode && props.unitCode[key];
      cell.appendChild(node("span", "v", valueText(props[key])));
      if (unit) cell.appendChild(document.createTextNode(" " + (UNITS[unit] || unit)));
      if (props.observedAt && props.observedAt[key]) cell.appendChild(node("span", "t", when(props.observedAt[key])));
      row.appendChild(cell);
      table.appendChild(row);
    });
    if (table.childNodes.length) wrap.appendChild(table);
    if (cfg.entity_pages && props.id) {
      var link = node("a", null, T.open);
      link.href = "/context/entities/" + encodeURIComponent(props.id).replace(/%3A/g, ":");
      wrap.appendChild(link);
    }
    return wrap;
  }

  function roadContent(props) {
    var wrap = node("div", "geo-popup");
    wrap.appendChild(node("div", "geo-popup-title", props.name));
    var kind = (T.classes && T.classes[props.road_class]) || props.road_class;
    wrap.appendChild(node("div", "geo-popup-sub", kind + (props.bridge ? " · " + T.bridge : "")));
    var table = node("table");
    [[T.speed, props.speed_limit_kmh], [T.current, props.speed_kmh]].forEach(function (pair) {
      var row = node("tr");
      row.appendChild(node("th", null, pair[0]));
      var cell = node("td");
      cell.appendChild(node("span", "v", valueText(pair[1])));
      cell.appendChild(document.createTextNode(" km/h"));
      row.appendChild(cell);
      table.appendChild(row);
    });
    wrap.appendChild(table);
    return wrap;
  }

  var districtName = {};
  cfg.districts.features.forEach(function (f) {
    districtName[f.properties.code] = zh ? f.properties.name_zh : f.properties.name_en;
  });

  function showPopup(state, lyr, latlng) {
    var feature = lyr.feature;
    var content = state.cfg.source === "roads" ? roadContent(feature.properties) : popupContent(state, feature.properties);
    var popup = L.popup({ maxWidth: 320, autoPanPadding: [30, 30] })
      .setLatLng(latlng || lyr.getLatLng())
      .setContent(content)
      .openOn(map);
    openPopup = { state: state, id: feature.id, popup: popup };
  }
  map.on("popupclose", function (e) { if (openPopup && openPopup.popup === e.popup) openPopup = null; });

  // after a refresh, an open popup shows the entity's new values
  function refreshPopup(state) {
    if (!openPopup || openPopup.state !== state || !state.markers) return;
    var marker = state.markers[openPopup.id];
    if (marker && openPopup.popup.isOpen()) openPopup.popup.setContent(popupContent(state, marker.feature.properties));
  }

  function roadStyle(feature) {
    var p = feature.properties;
    var base = ROAD_STYLE[p.road_class] || ROAD_STYLE.secondary;
    var ratio = p.speed_limit_kmh ? p.speed_kmh / p.speed_limit_kmh : 1;
    var color = p.speed_kmh === 0 ? "#8e1b1b" : ratio < 0.4 ? "#d32f2f" : ratio < 0.7 ? "#f57c00" : base.color;
    return {
      renderer: renderers.roads, color: color, weight: base.weight, opacity: 0.95,
      lineCap: "round", lineJoin: "round", dashArray: p.speed_kmh === 0 ? "6 6" : null
    };
  }

  // The colour of a feature: its color_by value's colour in the layer's palette, else the layer's colour.
  // Values are compared as text, as the palette writes them (2 → "2", true → "true").
  function paletteOf(layer) {
    var colors = {};
    (layer.palette || []).forEach(function (swatch) { colors[swatch.value] = swatch.color; });
    return function (props) {
      var value = layer.color_by && props ? props[layer.color_by] : null;
      if (value === null || value === undefined || typeof value === "object") return layer.color;
      return Object.prototype.hasOwnProperty.call(colors, String(value)) ? colors[String(value)] : layer.color;
    };
  }

  cfg.layers.forEach(function (layer) {
    var state = { cfg: layer, visible: true, filters: {}, values: {}, markers: {}, count: 0 };
    if (layer.source === "roads") {
      state.casing = L.geoJSON(null, {
        style: function (f) {
          var base = ROAD_STYLE[f.properties.road_class] || ROAD_STYLE.secondary;
          return { renderer: renderers.roads, color: "#ffffff", weight: base.weight + 2.6, opacity: 0.9, interactive: false };
        },
        interactive: false
      });
      state.lines = L.geoJSON(null, {
        style: roadStyle,
        onEachFeature: function (feature, lyr) {
          lyr.bindTooltip(function () { return escapeHtml(lyr.feature.properties.name); },
            { sticky: true, className: "geo-road-tip", direction: "top", offset: [0, -6] });
          lyr.on("click", function (e) { showPopup(state, lyr, e.latlng); });
        }
      });
      state.group = L.layerGroup([state.casing, state.lines]);
    } else {
      state.colorOf = paletteOf(layer);
      state.icons = {};
      state.iconOf = function (props) {
        var color = state.colorOf(props);
        return state.icons[color] || (state.icons[color] = L.divIcon({
          className: "geo-marker", iconSize: [20, 20],
          html: '<span style="--c:' + color + '">' + escapeHtml(layer.icon || "") + "</span>"
        }));
      };
      state.shapes = L.geoJSON(null, {
        style: function (f) {
          var color = state.colorOf(f.properties);
          // a layer coloured by value draws its lines (road segments) wide enough to read the colour
          var wide = layer.color_by && f.geometry && /LineString$/.test(f.geometry.type);
          return {
            renderer: renderers.shapes, color: color, weight: wide ? 4.5 : 2, opacity: 0.95, lineCap: "round",
            lineJoin: "round", fillColor: color, fillOpacity: 0.2
          };
        },
        pointToLayer: function (f, latlng) { return L.marker(latlng, { icon: state.iconOf(f.properties) }); },
        onEachFeature: function (feature, lyr) {
          lyr.on("click", function (e) { showPopup(state, lyr, e.latlng); });
        }
      });
      state.group = state.shapes;
    }
    state.group.addTo(map);
    states[layer.id] = state;
  });

  function applyRoads(state, collection) {
    state.casing.clearLayers().addData(collection);
    state.lines.clearLayers().addData(collection);
  }

  function applyEntities(state, collection) {
    var seen = {};
    var added = [];
    var removed = [];
    var shapes = [];
    collection.features.forEach(function (f) {
      var g = f.geometry;
      if (!g) return;
      if (g.type !== "Point") { shapes.push(f); return; }
      seen[f.id] = true;
      var latlng = L.latLng(g.coordinates[1], g.coordinates[0]);
      var marker = state.markers[f.id];
      var icon = state.iconOf(f.properties);
      if (marker) {
        marker.feature = f;
        if (!marker.getLatLng().equals(latlng)) marker.setLatLng(latlng);
        if (marker.options.icon !== icon) marker.setIcon(icon);
      } else {
        marker = L.marker(latlng, { icon: icon, keyboard: false, title: f.properties.name || f.id, layerId: state.cfg.id });
        marker.feature = f;
        state.markers[f.id] = marker;
        added.push(marker);
      }
    });
    Object.keys(state.markers).forEach(function (id) {
      if (!seen[id]) { removed.push(state.markers[id]); delete state.markers[id]; }
    });
    if (removed.length) clusters.removeLayers(removed);
    if (added.length) {
      chunking = true;
      clusters.addLayers(added);
    }
    state.shapes.clearLayers();
    if (shapes.length) state.shapes.addData({ type: "FeatureCollection", features: shapes });
  }

  function noteValues(state, collection) {
    state.cfg.filters.forEach(function (attr) {
      var known = state.values[attr] || (state.values[attr] = {});
      var select = document.querySelector('select[data-filter="' + state.cfg.id + '"][data-attr="' + attr + '"]');
      var fresh = [];
      collection.features.forEach(function (f) {
        var v = f.properties[attr];
        if (v === null || v === undefined || typeof v === "object") return;
        var key = String(v);
        if (!known[key]) { known[key] = true; fresh.push(key); }
      });
      if (!select || !fresh.length) return;
      var all = Object.keys(known).sort();
      var current = select.value;
      while (select.options.length > 1) select.remove(1);
      // the values of the attribute the layer is coloured by read as the palette's labels
      var labels = {};
      if (attr === state.cfg.color_by) (state.cfg.palette || []).forEach(function (s) { labels[s.value] = s.label; });
      all.forEach(function (v) { select.appendChild(new Option(labels[v] || v, v, false, v === current)); });
    });
  }

  function setCount(state, text) {
    var countEl = document.querySelector('[data-count="' + state.cfg.id + '"]');
    if (countEl) countEl.textContent = text;
  }

  function featuresUrl(state) {
    var params = ["limit=" + encodeURIComponent(cfg.limit)];
    if (selected) params.push("district=" + encodeURIComponent(selected));
    Object.keys(state.filters).forEach(function (attr) {
      if (state.filters[attr]) params.push(encodeURIComponent(attr) + "=" + encodeURIComponent(state.filters[attr]));
    });
    return state.cfg.features + "?" + params.join("&");
  }

  var statusEl = document.getElementById("geo-status");
  var busy = false;
  var pending = false;
  var generation = 0;

  function load(state, stamp) {
    return fetch(featuresUrl(state), { credentials: "same-origin", headers: { Accept: "application/geo+json" } })
      .then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (problem) {
            throw new Error(problem.detail || response.statusText || String(response.status));
          });
        }
        return response.json();
      })
      .then(function (collection) {
        if (stamp !== generation) return null; // the district or a filter changed meanwhile
        if (state.cfg.source === "roads") applyRoads(state, collection); else applyEntities(state, collection);
        noteValues(state, collection);
        state.count = collection.numberReturned;
        setCount(state, numberFormat.format(collection.numberReturned));
        refreshPopup(state);
        return collection.truncated ? format(T.truncated, { layer: state.cfg.title, count: collection.numberReturned }) : null;
      });
  }

  // resolves once every layer has put its markers into clusters (chunked loading runs across frames)
  function settled() {
    return new Promise(function (resolve) {
      var waited = 0;
      (function check() {
        if (!chunking || waited > 20000) { resolve(); return; }
        waited += 50;
        window.setTimeout(check, 50);
      })();
    });
  }

  function refresh() {
    if (busy) { pending = true; return; }
    busy = true;
    var stamp = generation;
    var work = Object.keys(states).filter(function (id) { return states[id].visible; }).map(function (id) {
      return load(states[id], stamp).catch(function (error) {
        setCount(states[id], "!");
        return format(T.failed, { layer: states[id].cfg.title, reason: error.message });
      });
    });
    Promise.all(work).then(function (notes) {
      var total = 0;
      Object.keys(states).forEach(function (id) { if (states[id].visible) total += states[id].count; });
      var message = format(T.updated, { time: clockFormat.format(new Date()) }) + " · " + format(T.features, { count: numberFormat.format(total) });
      var problems = notes.filter(Boolean);
      statusEl.textContent = problems.length ? problems.join("; ") : message;
      el.dataset.features = String(total);
      return settled().then(function () {
        el.dataset.ready = "1";
        el.dispatchEvent(new CustomEvent("geo:refreshed", { detail: { total: total } }));
      });
    }).finally(function () {
      busy = false;
      if (pending) { pending = false; refresh(); }
    });
  }

  // --- controls -----------------------------------------------------------------------------------

  var districtSelect = document.getElementById("geo-district");

  function selectDistrict(code, zoom) {
    selected = code || "";
    if (districtSelect) districtSelect.value = selected;
    districts.setStyle(districtStyle);
    if (selected && districtLayers[selected]) districtLayers[selected].bringToFront();
    if (zoom) {
      if (selected && districtBounds[selected]) map.flyToBounds(districtBounds[selected], { padding: [24, 24], duration: 0.6 });
      else map.flyToBounds(cityBounds, { padding: [16, 16], duration: 0.6 });
    }
    generation += 1;
    refresh();
  }

  if (districtSelect) districtSelect.addEventListener("change", function () { selectDistrict(districtSelect.value, true); });

  document.querySelectorAll("[data-toggle]").forEach(function (box) {
    box.addEventListener("change", function () {
      var state = states[box.getAttribute("data-toggle")];
      if (!state) return;
      state.visible = box.checked;
      var markers = state.markers ? Object.keys(state.markers).map(function (id) { return state.markers[id]; }) : [];
      if (box.checked) {
        state.group.addTo(map);
        if (markers.length) { chunking = true; clusters.addLayers(markers); }
        refresh();
      } else {
        map.removeLayer(state.group);
        if (markers.length) clusters.removeLayers(markers);
      }
    });
  });

  document.querySelectorAll("select[data-filter]").forEach(function (select) {
    select.addEventListener("change", function () {
      var state = states[select.getAttribute("data-filter")];
      if (!state) return;
      state.filters[select.getAttribute("data-attr")] = select.value;
      generation += 1;
      refresh();
    });
  });

  document.querySelectorAll("[data-view]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (button.getAttribute("data-view") === "central") map.flyToBounds(box(cfg.central), { duration: 0.6 });
      else selectDistrict("", true);
    });
  });

  map.fitBounds(cityBounds, { padding: [16, 16] });
  window.citybrainMap = { map: map, layers: states, refresh: refresh, selectDistrict: selectDistrict };
  refresh();
  window.setInterval(function () { if (!document.hidden) refresh(); }, cfg.refresh_ms);
})();
