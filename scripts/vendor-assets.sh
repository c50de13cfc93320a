#!/usr/bin/env bash
# Refresh the browser libraries shipped inside the package (no CDN at run time).
# Needs npm; the files it writes are committed, so installing CityBrain never needs it.
set -euo pipefail
dest="$(cd "$(dirname "$0")/.." && pwd)/src/citybrain/core/ui/static/vendor"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
fetch() {  # fetch PACKAGE@VERSION DIR FILE...
  local spec=$1 dir=$2; shift 2
  rm -rf package && tar xzf "$(npm pack -q "$spec" | tail -1)"
  rm -rf "${dest:?}/$dir" && mkdir -p "$dest/$dir"
  for f in "$@"; do cp -r "package/$f" "$dest/$dir/"; done
  cp package/LICENSE* package/MIT-LICENCE* "$dest/$dir/" 2>/dev/null || true
  echo "$spec" > "$dest/$dir/VERSION"
}
fetch htmx.org@2.0.11 htmx dist/htmx.min.js
fetch echarts@6.1.0 echarts dist/echarts.min.js
fetch leaflet@1.9.4 leaflet dist/leaflet.js dist/leaflet.css dist/images
fetch leaflet.markercluster@1.5.3 leaflet.markercluster dist/leaflet.markercluster.js dist/MarkerCluster.css dist/MarkerCluster.Default.css
