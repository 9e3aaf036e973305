#!/usr/bin/env bash
# Build the container images the Molecule scenarios use, without any registry:
# debootstrap a Debian root, import it into podman, then add what each scenario needs.
# Idempotent: an image whose recipe has not changed is not rebuilt (its recipe hash is a
# label). Needs root, podman, runc and debootstrap (molecule/images/install-podman.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VIGIL_IMAGE_CACHE:-/var/cache/vigil-images}
mkdir -p "$cache"

if ! podman image exists localhost/debian-min:bookworm; then
  if [ -f "$cache/debian-min.tar" ]; then
    podman load -q -i "$cache/debian-min.tar"
  else
    root=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$root" >/dev/null
    tar -C "$root" -c . | podman import - localhost/debian-min:bookworm >/dev/null
    rm -rf "$root"
    podman save -q -o "$cache/debian-min.tar" localhost/debian-min:bookworm
  fi
fi

for recipe in "$here"/*.Containerfile; do
  name=$(basename "$recipe" .Containerfile)
  sum=$(sha256sum "$recipe" | cut -c1-16)
  have=$(podman image inspect --format '{{ index .Labels "vigil.recipe" }}' \
         "localhost/$name:bookworm" 2>/dev/null || true)
  if [ "$have" != "$sum" ]; then
    echo "building localhost/$name:bookworm"
    podman build -q --pull=never --label "vigil.recipe=$sum" -t "localhost/$name:bookworm" \
      -f "$recipe" "$here" >/dev/null
  fi
done
