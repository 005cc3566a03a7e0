#!/usr/bin/env bash
# Screenshots of a synthetic replay report for docs/simulation.md ("Reading the report"):
# the report of examples/synthetic_report.rs (a generated GBA trace, outcomes made up, no
# cluster), each part shown alone and captured by headless Chromium (Debian's `chromium`,
# or NINETY_CHROMIUM). Run from the repository root: bash docs/img/report-screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
chromium="${NINETY_CHROMIUM:-chromium}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo run -q -p ninety-sim --example synthetic_report -- "$work/report"
# name, what to show (a CSS selector of the page's top-level parts), height in px
shots=(
  "headline|h1,p,table.headline|640"
  "throughput|#throughput|470"
  "errors|#errors|350"
  "match-rate|#match-rate|320"
  "doctors|#doctors|690"
)
for shot in "${shots[@]}"; do
  IFS='|' read -r name show height <<<"$shot"
  sed "s|</head>|<style>body>*{display:none}body>:is($show){display:block}</style></head>|" \
    "$work/report/report.html" >"$work/$name.html"
  "$chromium" --headless --disable-gpu --no-sandbox --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size="1000,$height" \
    --screenshot="docs/img/report-$name.png" "file://$work/$name.html" 2>/dev/null
  echo "docs/img/report-$name.png: $(stat -c %s "docs/img/report-$name.png") bytes"
done
