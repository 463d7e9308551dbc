#!/usr/bin/env bash
# Installs everything the test suites need on a fresh Debian machine.
# Idempotent: safe to run again.
set -euo pipefail
need_apt=()
# The multi-host test bed (testfixtures/testbed) needs systemd-nspawn,
# debootstrap, ssh/ssh-keygen, ip and sysctl.
for p in systemd-container debootstrap openssh-client iproute2 procps; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if ((${#need_apt[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# Build the test bed's cached Debian root filesystem now (about a minute,
# once) so that "make e2e" only boots hosts.
if [ "$(id -u)" = 0 ]; then
  "$(dirname "$0")/testbed/testbed.sh" rootfs
fi
python3 -c 'import zenoh' 2>/dev/null || pip install -q 'eclipse-zenoh==1.10.2'
command -v staticcheck >/dev/null 2>&1 || [ -x "$(go env GOPATH)/bin/staticcheck" ] || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
