#!/usr/bin/env bash
# Installs everything the test suites need on a fresh Debian machine.
# Idempotent: safe to run again.
set -euo pipefail
need_apt=()
for p in systemd-container debootstrap openssh-client iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if ((${#need_apt[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
python3 -c 'import zenoh' 2>/dev/null || pip install -q 'eclipse-zenoh==1.10.2'
command -v staticcheck >/dev/null 2>&1 || [ -x "$(go env GOPATH)/bin/staticcheck" ] || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
