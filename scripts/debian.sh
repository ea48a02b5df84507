#!/usr/bin/env bash
# Installs a command from Debian's packages where it is missing, and prints
# its path: scripts/debian.sh <command> <package>.
set -euo pipefail
cmd=$1 pkg=$2
if ! command -v "$cmd" >/dev/null 2>&1; then
  echo "debian: installing $pkg for $cmd" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2
fi
command -v "$cmd"
