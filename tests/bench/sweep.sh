#!/usr/bin/env bash
# Supplement to run.sh: Skerry fan-in 8->1 QoS 1 at FIXED publish rates, to
# find the highest rate it delivers with zero loss (unbounded fan-in QoS 1
# outruns the subscriber and loses messages), directly and through the
# in-process balancer. Same pinning: server CPU 0, generator CPU 1.
# Usage: tests/bench/sweep.sh [RATE...]   (default: 85000 120000 170000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
SKERRY=${SKERRY:-$ROOT/target/release/skerry}
OUT=${OUT:-$HERE/out/sweep-$(date +%Y%m%d-%H%M%S)}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(85000 120000 170000)
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PD=$(freeport); PP=$(freeport); PL=$(freeport)
cat > "$OUT/skerry-node-lb.yaml" <<YAML
broker:
  allow_anonymous: true
  sessions:
    max_inflight_messages: 100
    max_online_messages: 1000000
  store:
    engine: memory
  nodes:
    - name: bench
      data_dir: $OUT/data
      listeners:
        - name: direct
          bind: 127.0.0.1:$PD
        - name: from-lb
          bind: 127.0.0.1:$PP
          proxy_protocol:
            trusted: [127.0.0.1/32]
lb:
  listeners:
    - name: mqtt
      bind: 127.0.0.1:$PL
      pool: nodes
  pools:
    - name: nodes
      balance: client_id
      proxy_protocol: v2
      members:
        - name: bench
          address: 127.0.0.1:$PP
YAML
taskset -c 0 "$SKERRY" run -c "$OUT/skerry-node-lb.yaml" > "$OUT/skerry.log" 2>&1 &
SPID=$!; trap 'kill $SPID 2>/dev/null' EXIT
sleep 2
for rate in "${RATES[@]}"; do
  for t in "direct $PD" "via-lb $PL"; do set -- $t
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    cmd=(taskset -c 1 "$SKERRY" bench fanin --publishers 8 --qos 1 --rate "$rate" --duration 8s --port "$2" --json -q)
    "${cmd[@]}" > "$OUT/$rate-$1.json" 2>"$OUT/$rate-$1.err"
    jq -c --arg id "sweep-$rate-$1" --arg load "$load" --arg cmd "${cmd[*]}" \
      '{id:$id,load:$load,sent_per_sec,received_per_sec,lost,duplicates,connect_errors,disconnects,p50_us:(.latency_ms.p50*1000|round),p99_us:(.latency_ms.p99*1000|round),cmd:$cmd}' \
      "$OUT/$rate-$1.json" | tee -a "$OUT/results.jsonl"
    sleep 1
  done
done
