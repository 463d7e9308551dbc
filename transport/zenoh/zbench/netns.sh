#!/usr/bin/env bash
# Run zbench across two network namespaces joined by a veth pair:
#   zbench-a (10.231.0.1/24) --veth-- zbench-b (10.231.0.2/24)
# The server runs in zbench-b, the client in zbench-a. Needs root. The
# namespaces are deleted on exit. Extra arguments go to the client.
# ZBENCH_BIN=path runs that binary instead of building one from this
# tree (to compare two versions, e.g. one built from a git worktree).
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [[ -n "${ZBENCH_BIN:-}" ]]; then
	BIN=$ZBENCH_BIN
	OWNBIN=
else
	BIN=$(mktemp -d)/zbench
	OWNBIN=$BIN
	go build -o "$BIN" ./transport/zenoh/zbench
fi

cleanup() {
	[[ -n "${SERVER:-}" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
	ip netns del zbench-a 2>/dev/null || true
	ip netns del zbench-b 2>/dev/null || true
	[[ -n "$OWNBIN" ]] && rm -rf "$(dirname "$OWNBIN")" || true
}
trap cleanup EXIT
cleanup_ns() { ip netns del zbench-a 2>/dev/null || true; ip netns del zbench-b 2>/dev/null || true; }
cleanup_ns

ip netns add zbench-a
ip netns add zbench-b
ip link add zb-a type veth peer name zb-b
ip link set zb-a netns zbench-a
ip link set zb-b netns zbench-b
ip -n zbench-a addr add 10.231.0.1/24 dev zb-a
ip -n zbench-b addr add 10.231.0.2/24 dev zb-b
for ns in zbench-a zbench-b; do
	ip -n "$ns" link set lo up
done
ip -n zbench-a link set zb-a up
ip -n zbench-b link set zb-b up

ip netns exec zbench-b "$BIN" serve -host 10.231.0.2 >/dev/null &
SERVER=$!
sleep 0.5
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, Go $(go env GOVERSION)"
ip netns exec zbench-a "$BIN" client -host 10.231.0.2 "$@"
