#!/usr/bin/env bash
# Install what building and testing diagnose needs on Debian 12 (idempotent; root).
set -euo pipefail
PKGS=(build-essential cmake pkg-config gdb clang python3 systemd
      libelf-dev libdwarf-dev libunwind-dev libcjson-dev libzydis-dev libsystemd-dev
      libcmocka-dev zlib1g-dev bpftrace libclang-rt-14-dev libseccomp-dev
      scdoc lintian dpkg-dev man-db bash-completion libmicrohttpd-dev prometheus curl
      passwd util-linux libhiredis-dev redis-server)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
