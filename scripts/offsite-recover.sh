#!/usr/bin/env bash
# Recovers a backup from the off-site bucket with nothing of Vulcan Backup:
# curl (as the S3 client), age, jq, sha256sum and tar. README, "Recovering
# an off-site copy by hand", explains each step.
#
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#   scripts/offsite-recover.sh http://host:9000 bucket prefix/ 20261201_020000 key.txt out/
#
# The bucket is addressed path-style (endpoint/bucket/key); AWS_REGION
# defaults to us-east-1. out/ receives the archive, its manifest and, with
# EXTRACT=1, the extracted tree.
set -euo pipefail
endpoint=${1:?endpoint} bucket=${2:?bucket} prefix=${3?prefix} id=${4:?backup id} identity=${5:?age identity file} out=${6:?output directory}
region=${AWS_REGION:-us-east-1}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# S3's Signature V4 needs the SHA-256 of the (empty) request body in a header.
empty_sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
get() { # get KEY FILE: one object of the bucket, signed with the keys (given
  # on stdin, so that they never show in ps)
  printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" |
    curl -fsS -K - --aws-sigv4 "aws:amz:$region:s3" -H "x-amz-content-sha256: $empty_sha256" -o "$2" "$endpoint/$bucket/$prefix$1"
}

# 1. The index (the members in order) and the manifest (the checksums).
get "backups/$id/index.age" "$work/index.age"
age -d -i "$identity" -o "$work/index.json" "$work/index.age"
get "backups/$id/manifest.age" "$work/manifest.age"
age -d -i "$identity" -o "$out/vulcan_backup_$id.json" "$work/manifest.age"

# 2. Every object the index lists, decrypted, concatenated in order.
archive="$out/vulcan_backup_$id.tar.gz"
: >"$archive.part"
jq -r '.objects[].key' "$work/index.json" | while read -r key; do
  get "$key" "$work/object.age"
  age -d -i "$identity" "$work/object.age" >>"$archive.part"
done

# 3. The result is the archive byte for byte: its SHA-256 is the manifest's.
want=$(jq -r '.archive.sha256' "$out/vulcan_backup_$id.json")
got=$(sha256sum "$archive.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "offsite-recover: the rebuilt archive has sha256 $got, the manifest says $want" >&2
  exit 3
fi
mv "$archive.part" "$archive"
echo "$archive: sha256 $got, as the manifest says"

# 4. Optionally, the tree (and the database dump, under database/).
if [ "${EXTRACT:-0}" = 1 ]; then
  tar -xzf "$archive" -C "$out"
  echo "extracted into $out"
fi
