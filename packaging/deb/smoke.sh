#!/usr/bin/env bash
# Installs the .deb on this machine and uses it as an operator would, then
# removes and purges it. Needs root, mosquitto-clients and python3; systemd
# need not be running (CI has none as PID 1): the service is started the way
# the unit starts it (as user skerry, in /var/lib/skerry, with a stand-in
# NOTIFY_SOCKET that must see READY=1 and STOPPING=1).
#
#   bash packaging/deb/smoke.sh target/packaging/skerry_0.1.0_amd64.deb
#
# Pub/sub goes through the balancer's port of the installed configuration
# (1883). SKERRY_SMOKE_VIA=node goes straight to the node's listener (1884)
# instead, for as long as `skerry run` does not start the balancer.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"

deb=$(realpath "${1:?usage: smoke.sh PATH/TO/skerry.deb}")
case ${SKERRY_SMOKE_VIA:-lb} in
  lb) port=1883 ;;
  node) port=1884 ;;
  *) die "SKERRY_SMOKE_VIA must be lb or node" ;;
esac
[[ $(id -u) == 0 ]] || die "run as root: it installs the package"
for cmd in dpkg mosquitto_pub mosquitto_sub python3 setpriv; do
  command -v "$cmd" >/dev/null || die "$cmd is missing"
done

conf=/etc/skerry/skerry.yaml
wants=/etc/systemd/system/multi-user.target.wants/skerry.service
work=$(mktemp -d)
chmod 0755 "$work" # the service user must reach the notify socket in it
skerry_pid="" notify_pid=""
cleanup() {
  local rc=$?
  [[ -n $skerry_pid ]] && kill -KILL "$skerry_pid" 2>/dev/null
  [[ -n $notify_pid ]] && kill "$notify_pid" 2>/dev/null
  if ((rc != 0)); then
    echo "--- skerry log (last 40 lines):" >&2
    tail -n 40 "$work/skerry.log" >&2 || true
    echo "--- notify messages:" >&2
    cat "$work/notify.log" >&2 || true
  fi
  # Never leave the package behind on the CI machine.
  if installed; then
    dpkg -P skerry >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

port_free() {
  ! python3 -c 'import socket,sys; s=socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
wait_for() { # SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what"
    [[ -z $skerry_pid ]] || kill -0 "$skerry_pid" 2>/dev/null || die "skerry exited while waiting for $what"
    sleep 0.2
  done
}
owner_mode() { stat -c '%U:%G %a' "$1"; }
installed() { # dpkg knows the package in any state but not-installed
  local status
  status=$(dpkg-query -W -f='${db:Status-Status}' skerry 2>/dev/null) || return 1
  [[ -n $status && $status != not-installed ]]
}

if installed; then
  step "purging a skerry package left from an earlier run"
  dpkg -P skerry
fi
for p in 1883 1884 8888; do
  port_free "$p" || die "port $p is already in use on this machine"
done

step "dpkg -i $(basename "$deb")"
dpkg -i "$deb"
step "dpkg -i again (upgrade path of the maintainer scripts)"
dpkg -i "$deb"

step "checking what the package installed"
version=$(dpkg-deb -f "$deb" Version)
[[ $(/usr/bin/skerry --version) == "skerry $version" ]] || die "skerry --version is not $version"
cmp "$conf" "$SKERRY_ROOT/packaging/skerry.yaml" || die "$conf is not packaging/skerry.yaml"
[[ $(dpkg-query -W -f='${Conffiles}' skerry) == *" $conf "* ]] || die "$conf is not a conffile"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd skerry) || die "no skerry user"
((uid < 1000)) || die "skerry is not a system user (uid $uid)"
[[ $home == /var/lib/skerry && $shell == /usr/sbin/nologin ]] || die "skerry user: home $home, shell $shell"
[[ $(owner_mode /var/lib/skerry) == "skerry:skerry 750" ]] || die "/var/lib/skerry is $(owner_mode /var/lib/skerry)"
[[ $(owner_mode /etc/skerry) == "root:skerry 2750" ]] || die "/etc/skerry is $(owner_mode /etc/skerry)"
[[ $(owner_mode /etc/skerry/users) == "root:skerry 640" ]] || die "/etc/skerry/users is $(owner_mode /etc/skerry/users)"
unit=/usr/lib/systemd/system/skerry.service
# shellcheck disable=SC2016 # $MAINPID is literal unit text
for line in Type=notify 'ExecStartPre=/usr/bin/skerry config check /etc/skerry/skerry.yaml' \
  'ExecStart=/usr/bin/skerry run -c /etc/skerry/skerry.yaml' 'ExecReload=/bin/kill -HUP $MAINPID' \
  LimitNOFILE=1048576 ProtectSystem=strict ReadWritePaths=/var/lib/skerry \
  AmbientCapabilities=CAP_NET_BIND_SERVICE NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes \
  Restart=on-failure WorkingDirectory=/var/lib/skerry User=skerry; do
  grep -qxF "$line" "$unit" || die "$unit lacks '$line'"
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" || die "systemd-analyze verify $unit failed"
  systemd-analyze security --offline=true --threshold=30 "$unit" | tail -n 1
fi
if command -v deb-systemd-helper >/dev/null; then
  [[ -L $wants ]] || die "skerry.service was not enabled ($wants missing)"
fi

step "skerry config check $conf (as root, then as the service user)"
/usr/bin/skerry config check "$conf"
setpriv --reuid=skerry --regid=skerry --init-groups /usr/bin/skerry config check "$conf"

step "adding user 'smoke' with skerry passwd"
printf '%s\n' smoke-secret | /usr/bin/skerry passwd --password-stdin /etc/skerry/users smoke
[[ $(stat -c %G /etc/skerry/users) == skerry ]] || die "the rewritten users file lost group skerry"
if ! grep -qE '^  users_file: /etc/skerry/users' "$conf"; then
  # The operator's step while the reference file ships the line commented out.
  sed -i 's|^  # users_file: /etc/skerry/users$|  users_file: /etc/skerry/users|' "$conf"
  grep -qE '^  users_file: /etc/skerry/users' "$conf" || die "cannot enable broker.users_file in $conf"
  echo "enabled broker.users_file in $conf"
fi
/usr/bin/skerry config check "$conf"

step "starting /usr/bin/skerry run -c $conf as user skerry (as the unit does)"
python3 "$SKERRY_ROOT/packaging/scripts/notify-socket.py" "$work/notify.sock" "$work/notify.log" &
notify_pid=$!
wait_for 5 "the notify socket" grep -qs LISTENING=1 "$work/notify.log"
(
  cd /var/lib/skerry
  exec env NOTIFY_SOCKET="$work/notify.sock" \
    setpriv --reuid=skerry --regid=skerry --init-groups --no-new-privs \
    /usr/bin/skerry run -c "$conf"
) >"$work/skerry.log" 2>&1 &
skerry_pid=$!
started=$SECONDS
wait_for 30 "READY=1 on the notify socket" grep -qx READY=1 "$work/notify.log"
echo "READY=1 after $((SECONDS - started))s"
/usr/bin/skerry ctl --admin 127.0.0.1:8888 health || die "skerry ctl health failed"
python3 - <<'EOF' || die "admin endpoint checks failed"
import urllib.request
for path, want in (("/ready", b"ready"), ("/metrics", b"# ")):
    with urllib.request.urlopen("http://127.0.0.1:8888" + path, timeout=5) as r:
        body = r.read()
        assert r.status == 200 and want in body, (path, r.status, body[:200])
print("admin: /ready and /metrics answer 200")
EOF

step "MQTT through port $port (via ${SKERRY_SMOKE_VIA:-lb})"
if mosquitto_pub -h 127.0.0.1 -p "$port" -i smoke-anon -q 1 -t devices/anon/x -m x 2>"$work/anon.err"; then
  die "an anonymous client was admitted (allow_anonymous is false)"
fi
echo "anonymous client refused: $(head -n 1 "$work/anon.err")"
bash "$SKERRY_ROOT/packaging/scripts/pubsub.sh" 127.0.0.1 "$port" devices/smoke/hello smoke smoke-secret

echo "/var/lib/skerry holds: $(cd /var/lib/skerry && find . -mindepth 1 -maxdepth 2 | sort | tr '\n' ' ')"
foreign=$(find /var/lib/skerry ! -user skerry)
[[ -z $foreign ]] || die "files in /var/lib/skerry not owned by skerry: $foreign"

step "SIGHUP (ExecReload) re-reads the file and keeps running"
kill -HUP "$skerry_pid"
wait_for 10 "the reload to be logged" grep -q SIGHUP "$work/skerry.log"
grep SIGHUP "$work/skerry.log" | tail -n 1
kill -0 "$skerry_pid" || die "skerry died on SIGHUP"

step "SIGTERM: skerry must drain and exit 0 within its 30s grace period"
t0=$(date +%s%N)
kill -TERM "$skerry_pid"
wait "$skerry_pid" && rc=0 || rc=$?
skerry_pid=""
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
echo "exit code $rc after ${elapsed_ms} ms"
((rc == 0)) || die "skerry exited with $rc on SIGTERM"
((elapsed_ms < 30000)) || die "stopping took ${elapsed_ms} ms, more than the grace period"
grep -qx STOPPING=1 "$work/notify.log" || die "no STOPPING=1 on the notify socket"

step "dpkg -r skerry: binary gone, configuration and data kept"
# Whatever the node stored, plus a marker, must survive a remove.
setpriv --reuid=skerry --regid=skerry --init-groups touch /var/lib/skerry/smoke-marker
data_before=$(cd /var/lib/skerry && find . | sort)
dpkg -r skerry
[[ ! -e /usr/bin/skerry ]] || die "/usr/bin/skerry is still there after remove"
[[ -f $conf ]] || die "$conf was removed by remove (it is a conffile)"
[[ $(cd /var/lib/skerry && find . | sort) == "$data_before" ]] || die "remove changed /var/lib/skerry"
[[ $(dpkg-query -W -f='${db:Status-Status}' skerry) == config-files ]] || die "package not in config-files state"

step "dpkg -P skerry: configuration and data gone"
dpkg -P skerry
[[ ! -e /var/lib/skerry ]] || die "/var/lib/skerry is still there after purge"
[[ ! -e /etc/skerry ]] || die "/etc/skerry is still there after purge: $(ls -A /etc/skerry)"
[[ ! -e $wants && ! -e /etc/systemd/system/skerry.service ]] || die "systemd enablement left after purge"
if installed; then
  die "dpkg still knows skerry after purge"
fi
step "deb smoke test passed"
