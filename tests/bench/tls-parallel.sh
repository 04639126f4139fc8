#!/usr/bin/env bash
# Supplement to run.sh: mTLS full handshakes/s with N concurrent `openssl
# s_time` clients (all on CPU 1), against `skerry lb` and haproxy (CPU 0),
# reusing the configs and CA a run.sh output directory holds.
# Usage: tests/bench/tls-parallel.sh OUTDIR [N=3]
set -u
RUN=$(cd "$1" && pwd); N=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd); SKERRY=${SKERRY:-$HERE/../../target/release/skerry}
port_of() { grep -A1 "name: mtls" "$RUN/skerry-lb.yaml" | sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p'; }
P_LB=$(port_of); P_HA=$(sed -n 's/.*bind 127.0.0.1:\([0-9]*\) ssl.*/\1/p' "$RUN/haproxy.cfg")
taskset -c 0 "$SKERRY" run -c "$RUN/skerry-node6.yaml" > "$RUN/tlsp-node6.log" 2>&1 & P1=$!
sleep 1
taskset -c 0 "$SKERRY" lb -c "$RUN/skerry-lb.yaml" > "$RUN/tlsp-lb.log" 2>&1 & P2=$!
taskset -c 0 haproxy -db -f "$RUN/haproxy.cfg" > "$RUN/tlsp-haproxy.log" 2>&1 & P3=$!
trap 'kill $P1 $P2 $P3 2>/dev/null' EXIT
sleep 3
for t in "skerry-lb $P_LB" "haproxy $P_HA"; do set -- $t
  load=$(cut -d' ' -f1-3 /proc/loadavg); total=0
  for i in $(seq "$N"); do
    taskset -c 1 openssl s_time -connect "127.0.0.1:$2" -new -cert "$RUN/ca/dev.crt" -key "$RUN/ca/dev.key" \
      -CAfile "$RUN/ca/ca.crt" -time 10 > "$RUN/tlsp-$1-$i.txt" 2>&1 &
  done
  wait $(jobs -p | grep -v -e "^$P1$" -e "^$P2$" -e "^$P3$") 2>/dev/null
  for i in $(seq "$N"); do
    n=$(grep -m1 'real seconds' "$RUN/tlsp-$1-$i.txt" | awk '{print $1}'); total=$((total + ${n:-0}))
  done
  secs=$(grep -m1 'real seconds' "$RUN/tlsp-$1-1.txt" | sed -E 's/.* in ([0-9]+) real seconds.*/\1/')
  echo "$1: $N x 'taskset -c 1 openssl s_time -connect 127.0.0.1:$2 -new -cert dev.crt -key dev.key -CAfile ca.crt -time 10' -> $total handshakes in ${secs:-?} real s = $((total / ${secs:-10}))/s (load $load)"
done
