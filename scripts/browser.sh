#!/usr/bin/env bash
# Installs headless Chromium from Debian's packages where it is missing: the
# browser e2e tests load a hostile page in it. Prints the browser's path.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "browser: installing chromium from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
command -v chromium
