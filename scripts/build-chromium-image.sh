#!/usr/bin/env bash
# Build actorwork/chromium:<release>: the base image (build-base-image.sh) plus
# Debian's chromium, fonts and socat, starting headless Chromium with its
# DevTools endpoint on port 9222. Built with the classic builder from the local
# base image, so nothing is pulled. The Dockerfile and entrypoint are in
# scripts/chromium/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "${here}/lib.sh"

usage() {
  cat <<USAGE
usage: ${0##*/} [--force] [--no-cache] [--tag TAG] [--base TAG]

  --force      rebuild even if TAG exists (Docker's layer cache is reused)
  --no-cache   rebuild every layer (apt-get runs again)
  --tag TAG    image name (default: actorwork/chromium:<release of the base>)
  --base TAG   base image (default: actorwork/debian-python:<host release>;
               built with build-base-image.sh when missing)
USAGE
}

force=0 no_cache=() tag="" base=""
while (($#)); do
  case $1 in
    --force) force=1 ;;
    --no-cache) force=1 no_cache=(--no-cache) ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    --base) base=${2:?--base needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done

require_docker
base=${base:-actorwork/debian-python:$(host_release)}
start=$(date +%s)
if ! image_exists "${base}"; then
  [[ ${base} == actorwork/debian-python:* ]] ||
    die "base image ${base} does not exist: build it first (no registry to pull it from)"
  log "base image ${base} is missing; building it"
  "${here}/build-base-image.sh" --tag "${base}" --release "${base##*:}"
fi
release=$(docker image inspect -f '{{index .Config.Labels "org.actorwork.release"}}' "${base}")
tag=${tag:-actorwork/chromium:${release:-$(host_release)}}

if image_exists "${tag}" && ((!force)); then
  log "image ${tag} exists; nothing to do (--force rebuilds it)"
  exit 0
fi

# The classic builder resolves FROM against local images and pulls nothing;
# BuildKit would need the buildx plugin and may look the base up in a registry.
previous=$(image_id "${tag}")
log "docker build -> ${tag} (from ${base})"
DOCKER_BUILDKIT=0 docker build "${no_cache[@]}" --pull=false --build-arg "BASE=${base}" \
  --label "org.actorwork.base=${base}" -t "${tag}" "${here}/chromium" ||
  die "docker build of ${tag} failed; if apt-get failed, check that containers reach the Debian mirror (docker run --rm ${base} python3 -c 'import urllib.request as u; u.urlopen(\"http://deb.debian.org\")')"
drop_replaced_image "${previous}" "${tag}"

version=$(docker run --rm --label "${AW_LABEL_KEY}.test=1" "${tag}" chromium --version) ||
  die "the new image ${tag} does not run chromium"
log "built ${tag} (${version}, $(docker image inspect -f '{{.Size}}' "${tag}" |
  numfmt --to=iec)) in $(elapsed "${start}")"
