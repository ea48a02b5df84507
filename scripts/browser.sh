#!/usr/bin/env bash
# Installs headless Chromium from Debian's packages where it is missing: the
# browser e2e tests load a hostile page in it. Prints the browser's path.
exec "$(dirname "$0")/debian.sh" chromium chromium
