#!/usr/bin/env bash
# testbed.sh: a multi-host test bed on one Linux machine (run as root).
#
#   testbed.sh up N          build the cached rootfs if missing, boot hosts h1..hN
#   testbed.sh down          remove everything "up" created (idempotent)
#   testbed.sh start NAME    boot one host again (after stop/powercut)
#   testbed.sh stop NAME     clean poweroff (SIGTERM to systemd-nspawn)
#   testbed.sh powercut NAME power loss (SIGKILL to systemd-nspawn)
#   testbed.sh partition NAME / heal NAME   cut the host off the network / reconnect it
#   testbed.sh status        print the state file
#
# Each host hI is a Debian bookworm system booted with systemd-nspawn over a
# shared, cached root filesystem (its own overlay upper dir), in its own
# network namespace adtb-hI (PREFIX-hI) joined to the machine by a veth pair:
#
#   machine  adtb-hI 10.77.I.1/24  <--veth-->  host0 10.77.I.2/24  (inside hI)
#
# Hosts reach each other and the machine through the machine (ip_forward).
# Everything lives under RUN_DIR (state.json, cluster.yml, key, logs) and
# HOSTS_DIR (overlay upper dirs); "down" removes both.
set -euo pipefail

CACHE_DIR=${ADORA_TESTBED_CACHE:-/var/cache/adora-testbed}
RUN_DIR=${ADORA_TESTBED_DIR:-/run/adora-testbed}
HOSTS_DIR=${ADORA_TESTBED_HOSTS:-/var/lib/adora-testbed}
PORT=${ADORA_TESTBED_PORT:-6013}
ROOTFS=$CACHE_DIR/rootfs-bookworm
# A second, independent bed can run next to the first with another prefix
# and /16 (used by the test bed's own self-test).
PREFIX=${ADORA_TESTBED_PREFIX:-adtb}
NET=${ADORA_TESTBED_NET:-10.77}
USER_NAME=adora
USER_UID=1000
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,iproute2,sudo,ca-certificates

log() { echo "testbed: $*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)"; }

# build_rootfs creates the cached root filesystem once (about a minute).
build_rootfs() {
  if [ -f "$ROOTFS/.adora-testbed-ready" ]; then return; fi
  command -v debootstrap >/dev/null || die "debootstrap missing: run testfixtures/setup.sh"
  mkdir -p "$CACHE_DIR"
  local tmp=$CACHE_DIR/rootfs.tmp.$$
  rm -rf "$tmp"
  log "building Debian bookworm rootfs in $ROOTFS (cached; about a minute)"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    { rm -rf "$tmp"; die "debootstrap failed, see $CACHE_DIR/debootstrap.log"; }
  chroot "$tmp" useradd -m -u "$USER_UID" -s /bin/bash "$USER_NAME"
  echo "$USER_NAME ALL=(ALL) NOPASSWD:ALL" >"$tmp/etc/sudoers.d/$USER_NAME"
  chmod 0440 "$tmp/etc/sudoers.d/$USER_NAME"
  # Host keys are generated per host at boot time; none in the shared image.
  rm -f "$tmp"/etc/ssh/ssh_host_*
  printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\n' >"$tmp/etc/ssh/sshd_config.d/adora-testbed.conf"
  # No console getty: hosts run headless.
  chroot "$tmp" systemctl mask console-getty.service getty@tty1.service >/dev/null 2>&1 || true
  touch "$tmp/.adora-testbed-ready"
  rm -rf "$ROOTFS"
  mv "$tmp" "$ROOTFS"
}

host_index() { # hI -> I
  [[ $1 =~ ^h([0-9]+)$ ]] || die "unknown host $1 (want h1, h2, ...)"
  echo "${BASH_REMATCH[1]}"
}

# prepare_upper writes the per-host files that differ from the image.
prepare_upper() {
  local i=$1 up=$HOSTS_DIR/h$i/upper
  mkdir -p "$up/etc/ssh" "$up/root/.ssh" "$up/home/$USER_NAME/.ssh"
  echo "h$i" >"$up/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 h%s\n' "$i" >"$up/etc/hosts"
  for n in $(seq 1 "$COUNT"); do echo "$NET.$n.2 h$n" >>"$up/etc/hosts"; done
  ssh-keygen -q -t ed25519 -N '' -C "h$i" -f "$up/etc/ssh/ssh_host_ed25519_key"
  cp "$RUN_DIR/id_ed25519.pub" "$up/root/.ssh/authorized_keys"
  cp "$RUN_DIR/id_ed25519.pub" "$up/home/$USER_NAME/.ssh/authorized_keys"
  chmod 700 "$up/root/.ssh" "$up/home/$USER_NAME/.ssh"
  chmod 600 "$up/root/.ssh/authorized_keys" "$up/home/$USER_NAME/.ssh/authorized_keys"
  chmod 755 "$up/home/$USER_NAME"
  chown -R "$USER_UID:$USER_UID" "$up/home/$USER_NAME"
}

setup_net() {
  local i=$1 ns=$PREFIX-h$i veth=$PREFIX-h$i
  ip netns add "$ns"
  ip link add "$veth" type veth peer name host0 netns "$ns"
  ip addr add "$NET.$i.1/24" dev "$veth"
  ip link set "$veth" up
  ip netns exec "$ns" ip addr add "$NET.$i.2/24" dev host0
  ip netns exec "$ns" ip link set host0 up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip route add default via "$NET.$i.1"
}

start_host() {
  local i=$1
  local pidf=$RUN_DIR/h$i.pid
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then log "h$i already running"; return; fi
  setsid systemd-nspawn -D "$ROOTFS" --overlay="$ROOTFS:$HOSTS_DIR/h$i/upper:/" \
    --machine="$PREFIX-h$i" --hostname="h$i" --boot --register=no --keep-unit \
    --network-namespace-path="/run/netns/$PREFIX-h$i" --private-users=no \
    --console=passive --link-journal=no \
    </dev/null >>"$RUN_DIR/h$i.log" 2>&1 9>&- &
  echo $! >"$pidf"
}

ssh_as() { # user index command...
  local u=$1 i=$2; shift 2
  ssh -i "$RUN_DIR/id_ed25519" -o BatchMode=yes -o ConnectTimeout=3 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    "$u@$NET.$i.2" "$@"
}
ssh_host() { ssh_as root "$@"; }
ssh_user() { ssh_as "$USER_NAME" "$@"; }

# wait_host waits until host i has booted and takes logins from the
# unprivileged user the tests use: root can log in earlier, while systemd's
# /run/nologin still turns everyone else away ("System is booting up").
wait_host() {
  local i=$1 deadline=$((SECONDS + 90)) out
  while ((SECONDS < deadline)); do
    out=$(ssh_host "$i" systemctl is-system-running 2>/dev/null || true)
    case $out in
      running | degraded)
        if ssh_user "$i" true 2>/dev/null; then
          [ "$out" = running ] || log "h$i is degraded: $(ssh_host "$i" systemctl --failed --no-legend --plain 2>/dev/null | awk '{print $1}' | xargs)"
          return 0
        fi
        out="$out, but $USER_NAME cannot log in yet"
        ;;
    esac
    kill -0 "$(cat "$RUN_DIR/h$i.pid")" 2>/dev/null || die "h$i exited during boot, see $RUN_DIR/h$i.log"
    sleep 0.5
  done
  ssh_host "$i" 'systemctl --failed --no-pager; cat /run/nologin' >&2 2>/dev/null || true
  die "h$i not ready after 90s (last answer: ${out:-none}), see $RUN_DIR/h$i.log"
}

stop_host() { # $1 index, $2 signal
  local i=$1 sig=$2 pidf=$RUN_DIR/h$i.pid pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  fi
  # Anything the guest left in its namespace (it should be empty now).
  for p in $(ip netns pids "$PREFIX-h$i" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$pidf"
}

labels_for() { # index -> YAML label lines
  local i=$1
  case $i in
    1) printf '      role: robot\n      camera: "true"\n' ;;
    2) printf '      role: gpu-server\n      gpu: "true"\n' ;;
    *) printf '      role: edge\n' ;;
  esac
  printf '      zone: %s\n' "$([ $((i % 2)) = 1 ] && echo a || echo b)"
}

write_cluster() {
  local f=$RUN_DIR/cluster.yml
  {
    echo "# Written by testbed.sh for the test bed; regenerated by every \"up\"."
    echo "coordinator:"
    echo "  addr: $NET.1.1"
    echo "  port: $PORT"
    echo "ssh:"
    echo "  user: $USER_NAME"
    echo "  identity_file: $RUN_DIR/id_ed25519"
    echo "machines:"
    for i in $(seq 1 "$COUNT"); do
      echo "  - id: h$i"
      echo "    host: $NET.$i.2"
      echo "    labels:"
      labels_for "$i"
    done
  } >"$f"
}

write_state() {
  local f=$RUN_DIR/state.json tmp i pid sep=""
  tmp=$(mktemp "$RUN_DIR/state.json.XXXXXX")
  {
    printf '{\n  "version": 1,\n  "key": "%s",\n  "user": "%s",\n  "cluster": "%s",\n  "coordinator_addr": "%s",\n  "coordinator_port": %s,\n  "rootfs": "%s",\n  "hosts": [' \
      "$RUN_DIR/id_ed25519" "$USER_NAME" "$RUN_DIR/cluster.yml" "$NET.1.1" "$PORT" "$ROOTFS"
    for i in $(seq 1 "$COUNT"); do
      pid=0
      [ -f "$RUN_DIR/h$i.pid" ] && pid=$(cat "$RUN_DIR/h$i.pid")
      printf '%s\n    {"name": "h%s", "index": %s, "addr": "%s", "host_addr": "%s", "netns": "%s", "veth": "%s", "pid": %s, "upper": "%s"}' \
        "$sep" "$i" "$i" "$NET.$i.2" "$NET.$i.1" "$PREFIX-h$i" "$PREFIX-h$i" "$pid" "$HOSTS_DIR/h$i/upper"
      sep=","
    done
    printf '\n  ]\n}\n'
  } >"$tmp"
  mv "$tmp" "$f"
}

read_count() {
  [ -f "$RUN_DIR/count" ] || die "test bed is not up (no $RUN_DIR/count); run: testbed.sh up N"
  COUNT=$(cat "$RUN_DIR/count")
}

cmd_up() {
  COUNT=${1:-3}
  [[ $COUNT =~ ^[1-9][0-9]?$ ]] && ((COUNT <= 50)) || die "N must be 1..50, got $COUNT"
  command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing: run testfixtures/setup.sh"
  if [ -f "$RUN_DIR/count" ]; then
    if [ "$(cat "$RUN_DIR/count")" = "$COUNT" ] && all_running; then
      for i in $(seq 1 "$COUNT"); do wait_host "$i"; done
      log "test bed with $COUNT hosts is already up"
      cat "$RUN_DIR/state.json"
      return
    fi
    log "replacing the existing test bed"
    cmd_down
  fi
  build_rootfs
  mkdir -p "$RUN_DIR" "$HOSTS_DIR"
  chmod 700 "$RUN_DIR"
  echo "$COUNT" >"$RUN_DIR/count"
  ssh-keygen -q -t ed25519 -N '' -C adora-testbed -f "$RUN_DIR/id_ed25519"
  sysctl -qw net.ipv4.ip_forward=1
  # Test traffic never leaves the bed: anything in 10.77/16 without a host
  # route is dropped instead of following the default route.
  ip route replace blackhole "$NET.0.0/16"
  for i in $(seq 1 "$COUNT"); do
    prepare_upper "$i"
    setup_net "$i"
    start_host "$i"
  done
  write_cluster
  write_state
  for i in $(seq 1 "$COUNT"); do wait_host "$i"; done
  log "$COUNT hosts up; cluster file $RUN_DIR/cluster.yml"
  cat "$RUN_DIR/state.json"
}

all_running() {
  local i
  for i in $(seq 1 "$COUNT"); do
    [ -f "$RUN_DIR/h$i.pid" ] && kill -0 "$(cat "$RUN_DIR/h$i.pid")" 2>/dev/null || return 1
  done
}

cmd_down() {
  local i
  for f in "$RUN_DIR"/h*.pid; do
    [ -e "$f" ] || continue
    i=$(basename "$f" .pid); i=${i#h}
    stop_host "$i" TERM
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-h[0-9]+\$" || true); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$PREFIX-h[0-9]+\$" || true); do
    ip link del "$l" 2>/dev/null || true
  done
  ip route del blackhole "$NET.0.0/16" 2>/dev/null || true
  rm -rf "$HOSTS_DIR" "$RUN_DIR"
  log "test bed removed"
}

heal_host() {
  local i=$1 ns=$PREFIX-h$i
  ip netns exec "$ns" ip link set host0 up
  ip netns exec "$ns" ip route replace default via "$NET.$i.1"
  # Forget neighbours that failed while cut off, then wait until it answers.
  ip neigh flush dev "$PREFIX-h$i" 2>/dev/null || true
  ip netns exec "$ns" ip neigh flush dev host0 2>/dev/null || true
  wait_host "$i"
}

cmd_host() { # verb name
  local verb=$1 i
  i=$(host_index "$2")
  read_count
  ((i >= 1 && i <= COUNT)) || die "no host $2 in a test bed of $COUNT"
  case $verb in
    start) start_host "$i"; write_state; wait_host "$i" ;;
    stop) stop_host "$i" TERM; write_state ;;
    powercut) stop_host "$i" KILL; write_state ;;
    reboot) stop_host "$i" TERM; start_host "$i"; write_state; wait_host "$i" ;;
    # The guest's end goes down: packets to and from it are dropped (the
    # connected route stays, so nothing falls through to another network).
    partition) ip netns exec "$PREFIX-h$i" ip link set host0 down ;;
    heal) heal_host "$i" ;;
  esac
}

# lock serialises changes to one bed: two test runs that bring it up at
# the same moment get one bed, not two half-built ones. The lock file
# (/run/PREFIX-testbed.lock) stays; processes the bed keeps running (the
# hosts) must not inherit fd 9.
lock() {
  exec 9>"/run/$PREFIX-testbed.lock"
  flock 9
}

main() {
  local cmd=${1:-}
  case $cmd in
    up | down | start | stop | powercut | reboot | partition | heal | rootfs) need_root; lock ;;
  esac
  case $cmd in
    up) need_root; cmd_up "${2:-3}" ;;
    down) need_root; cmd_down ;;
    start | stop | powercut | reboot | partition | heal)
      need_root
      [ $# -ge 2 ] || die "usage: $0 $cmd NAME"
      cmd_host "$cmd" "$2"
      ;;
    status) cat "$RUN_DIR/state.json" ;;
    rootfs) need_root; build_rootfs ;;
    *) echo "usage: $0 up N | down | start|stop|powercut|reboot|partition|heal NAME | status | rootfs" >&2; exit 2 ;;
  esac
}

main "$@"
