#!/usr/bin/env bash
# Cost per post of `clarion run`, split into creating the posts through the
# API, the idle wait until they fall due, and the drain. Same sink and
# creation client as ../shared/peer-bench/compare.sh (run compare.sh once
# first: it builds the sink and installs the client into $WORK).
#   tests/bench/drain_cost.sh target/release/clarion 100000 [pg]
# Prints CPU ms per phase, CPU per post, peak RSS, and the sink's drain
# rate, lateness, early and duplicate counts.
set -euo pipefail
BIN=$(realpath "$1"); N=$2; DB=${3:-sqlite}
WORK=${WORK:-${TMPDIR:-/tmp}/peer-bench}
SINK_BIN=$WORK/sink-target/release/sink
[ -x "$SINK_BIN" ] || { echo "no sink at $SINK_BIN: run ../shared/peer-bench/compare.sh once" >&2; exit 2; }
DIR=$(mktemp -d); cd "$DIR"; mkdir -p data content/posts content/templates
if [ "$DB" = pg ]; then
  psql -h 127.0.0.1 -U postgres -qAt -c "DROP DATABASE IF EXISTS cost_clarion" -c "CREATE DATABASE cost_clarion"
  URL="postgres://postgres@127.0.0.1:5432/cost_clarion"
else
  URL="sqlite://data/clarion.db?mode=rwc"
fi
LEAD=$(( N / 6000 + 12 ))
T0=$(( ($(date +%s) + LEAD) * 1000 ))
cat > clarion.toml <<EOT
database_url = "$URL"
[log]
level = "warn"
[server]
bind = "127.0.0.1:8391"
api_token = { env = "CLARION_API_TOKEN" }
[[channels]]
name = "sink"
kind = "webhook"
url = "http://127.0.0.1:3901/post?due_ms=$T0"
format = "clarion"
idempotent = true
EOT
"$SINK_BIN" 3901 1 > sink.log 2>&1 & SINK=$!
CLARION_CONFIG=$DIR/clarion.toml CLARION_API_TOKEN=tok "$BIN" run > clarion.log 2>&1 & CL=$!
trap 'kill $CL $SINK 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:8391/healthz >/dev/null && curl -sf http://127.0.0.1:3901/health >/dev/null && break; sleep 0.1; done
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14+$15)*1000/hz)}' /proc/$CL/stat; }
C0=$(cpu)
(cd "$WORK" && CLARION_API_TOKEN=tok node create.js http://127.0.0.1:8391 "$N" "$T0" 16 sink "$DIR/create.json" >/dev/null)
C1=$(cpu)
W=$(( T0 - $(date +%s%3N) - 500 )); [ "$W" -gt 0 ] && sleep "$(echo "$W/1000" | bc -l)"
C2=$(cpu)
for _ in $(seq 1200); do c=$(curl -s http://127.0.0.1:3901/count | tr -dc 0-9); [ "${c:-0}" -ge "$N" ] && break; sleep 0.1; done
sleep 0.3; C3=$(cpu)
echo "posts=$N db=$DB create_cpu_ms=$((C1-C0)) idle_cpu_ms=$((C2-C1)) drain_cpu_ms=$((C3-C2)) \
cpu_per_post_ms(create+drain)=$(echo "scale=3; ($C1-$C0+$C3-$C2)/$N" | bc) \
cpu_per_post_ms(drain)=$(echo "scale=3; ($C3-$C2)/$N" | bc) peak_rss_kB=$(awk '/VmHWM/{print $2}' /proc/$CL/status)"
curl -s http://127.0.0.1:3901/stats | python3 -c '
import json, sys
d = json.load(sys.stdin); l = d["lateness_ms"]
print("delivered=%s early=%s duplicates=%s drain_per_s=%d p50_ms=%s p99_ms=%s" % (
    d["count"], d["early"], d["duplicates"], round(d["throughput_per_s"]), l["p50"], l["p99"]))'
