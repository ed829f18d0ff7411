#!/usr/bin/env bash
# Renders each report page (backtest, optimisation, stress, batch) in
# headless Chromium: the page must load with no console error and no
# failed or external load, every chart image must decode to a picture, and
# the screenshot must not be blank. Usage: test_render.sh BUILD SOURCE
# [SHOTS]: with SHOTS, the screenshots are kept there (docs/img). Without
# Chromium the test is skipped, but fails under CI=true.
set -euo pipefail
build=$1 src=$2 shots=${3:-}
keel=$build/cli/keel
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ]; then
  if [ "${CI:-}" = true ]; then echo "test_render: chromium is missing (apt-get install chromium)"; exit 1; fi
  echo "test_render: chromium is missing: skipped"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prices=$src/data/samples/multi_asset.csv
db=$tmp/r.db

"$keel" backtest --prices "$prices" --spec "$src/tests/report/account.json" --db "$db" \
  --report "$tmp/backtest.html" -q
"$keel" optimize --prices "$prices" --objective max_sharpe --cov ledoit_wolf --max-weight 0.4 \
  --current EQUITY=0.35,EM_EQUITY=0.10,BOND=0.30,GOLD=0.10,CRYPTO=0.05,CASH=0.10 --points 40 \
  --db "$db" --report "$tmp/optimize.html" >/dev/null
"$keel" stress --prices "$prices" --weights EQUITY=0.35,EM_EQUITY=0.10,BOND=0.30,GOLD=0.10,CRYPTO=0.05,CASH=0.10 \
  --rebalance monthly --band 0.05 --capital 100000 --contribution 500 --paths 2000 --years 30 --threads 2 \
  --goal 1000000 --scenario 'crash:equity:-0.4@5y;vol:all:2@5y/1y' --db "$db" --report "$tmp/stress.html" -q
: > "$tmp/jobs.jsonl"
for w in 0.2 0.4 0.6 0.8; do
  b=$(python3 -c "print(round(0.9 - $w, 2))")
  printf '{"id": "eq%s", "dataset": "%s", "run": {"benchmark": "EQUITY", "subaccounts": [{"name": "main", "capital": 100000, "weights": {"EQUITY": %s, "BOND": %s, "GOLD": 0.1}, "schedule": "%s", "costs": {"buy_bps": 10, "sell_bps": 10}}]}}\n' \
    "$w" "$prices" "$w" "$b" quarterly >> "$tmp/jobs.jsonl"
  printf '{"id": "eq%s-m", "dataset": "%s", "run": {"subaccounts": [{"name": "main", "capital": 100000, "weights": {"EQUITY": %s, "BOND": %s, "CRYPTO": 0.1}, "schedule": "monthly", "costs": {"buy_bps": 10, "sell_bps": 10}}]}}\n' \
    "$w" "$prices" "$w" "$b" >> "$tmp/jobs.jsonl"
done
"$keel" batch "$tmp/jobs.jsonl" --db "$db" --threads 2 --report "$tmp/batch.html" -q

# no such run / no such database: a clear message and no file
if "$keel" report --db "$db" --run 999 --out "$tmp/none.html" 2> "$tmp/err"; then
  echo "test_render: a report of run 999 succeeded"; exit 1; fi
grep -q "no run 999" "$tmp/err" || { echo "test_render: unclear error: $(cat "$tmp/err")"; exit 1; }
if "$keel" report --db "$tmp/missing.db" --run 1 --out "$tmp/none.html" 2> "$tmp/err"; then
  echo "test_render: a report from a missing database succeeded"; exit 1; fi
grep -q "missing.db" "$tmp/err" || { echo "test_render: unclear error: $(cat "$tmp/err")"; exit 1; }
[ ! -e "$tmp/none.html" ] && [ ! -e "$tmp/missing.db" ] || { echo "test_render: a failed report left a file"; exit 1; }

status=0
for page in backtest optimize stress batch; do
  html=$tmp/$page.html
  grep -q "Content-Security-Policy" "$html" || { echo "$page: no CSP"; status=1; }
  want=$(grep -o '<figure class="chart' "$html" | wc -l)
  # a copy with the check script (the page's own CSP allows no script)
  { sed 's/<meta http-equiv="Content-Security-Policy"[^>]*>//' "$html" | sed 's#</body>##; s#</html>##'
    printf '<script>\n'; cat "$src/tests/report/check.js"; printf '</script>\n</body>\n</html>\n'; } > "$tmp/$page-check.html"
  "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=5000 \
    --enable-logging=stderr --v=0 --dump-dom "file://$tmp/$page-check.html" > "$tmp/$page.dom" 2> "$tmp/$page.log" || true
  verdict=$(grep -o '<pre id="keel-check">KEEL-CHECK[^<]*' "$tmp/$page.dom" | sed 's/^<pre id="keel-check">//' || true)
  echo "$page: $verdict"
  if [ "$verdict" != "KEEL-CHECK charts=$want bad=0 external=0" ] || [ "$want" -lt 2 ]; then
    echo "$page: expected $want charts, all decoded, nothing external"; status=1; fi
  if grep -E 'CONSOLE|Uncaught|ERR_FILE_NOT_FOUND|Failed to load|net::ERR' "$tmp/$page.log"; then
    echo "$page: errors while loading"; status=1; fi
  # the page itself, as a user sees it
  h=$(case $page in backtest) echo 3900;; stress) echo 2250;; optimize) echo 2000;; batch) echo 1900;; esac)
  "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,"$h" \
    --screenshot="$tmp/$page.png" "file://$html" > /dev/null 2>&1 || true
  python3 "$src/tests/report/check_png.py" "$tmp/$page.png" 1200 || status=1
  if [ -n "$shots" ] && [ $status -eq 0 ]; then cp "$tmp/$page.png" "$shots/report-$page.png"; fi
done
exit $status
