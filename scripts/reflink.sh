#!/usr/bin/env bash
# Measures copying members by copy_file_range on an XFS loop device with
# reflink, against this machine's own file system (issue 19; not part of
# make bench). Needs root, a free loop device and xfsprogs (Debian).
#   scripts/reflink.sh [MB]
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-512}
command -v mkfs.xfs >/dev/null || { echo "reflink.sh: mkfs.xfs not found (apt-get install xfsprogs)" >&2; exit 1; }
work=$(mktemp -d)
img=$work/xfs.img mnt=$work/mnt
trap 'umount "$mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
truncate -s $((mb * 3 + 512))M "$img"
mkfs.xfs -q -m reflink=1 "$img"
mkdir -p "$mnt"
mount -o loop "$img" "$mnt"
go build -o "$work/probe" ./scripts/reflinkprobe
echo "XFS (reflink=1) on a loop device, $mb MiB:"
"$work/probe" -dir "$mnt" -mb "$mb"
echo "$(df --output=fstype "$PWD" | tail -1) under $PWD, $mb MiB:"
mkdir -p bench-data; "$work/probe" -dir bench-data -mb "$mb"
