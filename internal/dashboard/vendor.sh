#!/usr/bin/env bash
# Copies the dashboard's libraries from the npm registry (exact versions
# from package-lock.json) into static/vendor and records what it copied in
# static/vendor/VERSIONS, which TestVendor checks against the lockfile and
# the files. Run it after changing package.json; commit the result.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp package.json package-lock.json "$tmp"/
(cd "$tmp" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
m="$tmp/node_modules"
cp "$m/plotly.js-dist-min/plotly.min.js" static/vendor/
cp "$m/plotly.js-dist-min/LICENSE" static/vendor/plotly.LICENSE
cp "$m/tabulator-tables/dist/js/tabulator.min.js" "$m/tabulator-tables/dist/css/tabulator.min.css" static/vendor/
cp "$m/tabulator-tables/LICENSE" static/vendor/tabulator.LICENSE
{
  for pkg in plotly.js-dist-min tabulator-tables; do
    echo "package $pkg $(node -p "require('$m/$pkg/package.json').version")"
  done
  (cd static/vendor && sha256sum plotly.min.js tabulator.min.js tabulator.min.css | sed 's/^/file /')
} > static/vendor/VERSIONS
echo "vendor.sh: $(wc -l < static/vendor/VERSIONS) lines in static/vendor/VERSIONS"
