#!/usr/bin/env bash
# Build actorwork/worker:<version>: the base image (build-base-image.sh) with
# actorwork and its runtime dependencies installed offline into a venv.
#
#   1. export a commit of the project (default HEAD, so uncommitted edits in
#      the work tree stay out; --worktree takes the tree as it is);
#   2. `pip wheel` it and its dependencies into a wheelhouse on the host
#      (this step uses PyPI);
#   3. `docker build` FROM the local base with `pip install --no-index
#      --find-links` (this step uses no network at all).
#
# --chromium makes a worker that renders: FROM the Chromium image
# (build-chromium-image.sh) with CJK and emoji fonts from Debian's archive and
# actorwork's chromium extra (scripts/chromium-worker/Dockerfile).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "${here}/lib.sh"

usage() {
  cat <<USAGE
usage: ${0##*/} [--force] [--chromium] [--tag TAG] [--base TAG] [--ref REF | --worktree]
                [--extras LIST] [--wheelhouse DIR | --offline DIR] [--python PYTHON]

  --force          rebuild even if TAG exists
  --chromium       a worker that renders: Debian's chromium, Latin, CJK and emoji
                   fonts, and the chromium extra (default TAG:
                   actorwork/chromium-worker:<project version>, default base:
                   actorwork/chromium:<host release>, built when missing)
  --tag TAG        image name (default: actorwork/worker:<project version>)
  --base TAG       base image (default: actorwork/debian-python:<host release>)
  --ref REF        git revision of the project to build (default: HEAD)
  --worktree       build the work tree as it is, uncommitted edits included
  --extras LIST    optional dependencies to include, e.g. docker,chromium
  --wheelhouse DIR where the wheels go (default: <cache>/wheelhouse/<version>)
  --offline DIR    skip pip wheel and install from the wheels already in DIR
                   (for a machine without PyPI)
  --python PYTHON  host interpreter for pip wheel; must match the image's
                   Python minor version, because wheels are built for it
                   (default: python3)
USAGE
}

force=0 chromium=0 tag="" base="" ref=HEAD worktree=0 extras="" wheelhouse="" offline=0 python=python3
while (($#)); do
  case $1 in
    --force) force=1 ;;
    --chromium) chromium=1 ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    --base) base=${2:?--base needs a value}; shift ;;
    --ref) ref=${2:?--ref needs a value}; shift ;;
    --worktree) worktree=1 ;;
    --extras) extras=${2:?--extras needs a value}; shift ;;
    --wheelhouse) wheelhouse=${2:?--wheelhouse needs a value}; shift ;;
    --offline) wheelhouse=${2:?--offline needs a value} offline=1; shift ;;
    --python) python=${2:?--python needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done

require_docker
project=$(cd "${here}/.." && pwd)
flavour=worker
if ((chromium)); then
  flavour=chromium-worker
  base=${base:-actorwork/chromium:$(host_release)}
  [[ ,${extras}, == *,chromium,* ]] || extras=${extras:+${extras},}chromium
fi
base=${base:-actorwork/debian-python:$(host_release)}
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

# The project source: a clean export of a commit, or the work tree.
if ((worktree)); then
  src=${project}
  commit="$(git -C "${project}" rev-parse --short HEAD 2>/dev/null || echo unknown)-worktree"
else
  commit=$(git -C "${project}" rev-parse --short "${ref}^{commit}") ||
    die "--ref ${ref@Q} is not a commit of ${project}"
  src=${work}/src
  mkdir -p "${src}"
  git -C "${project}" archive "${commit}" | tar -x -C "${src}"
fi
version=$("${python}" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "${src}/pyproject.toml") ||
  die "cannot read the project version from ${src}/pyproject.toml with ${python} (it needs Python >= 3.11: pass --python)"
tag=${tag:-actorwork/${flavour}:${version}}

if image_exists "${tag}" && ((!force)); then
  log "image ${tag} exists; nothing to do (--force rebuilds it)"
  exit 0
fi

if ! image_exists "${base}"; then
  case ${base} in
    actorwork/debian-python:*)
      log "base image ${base} is missing; building it"
      "${here}/build-base-image.sh" --tag "${base}" --release "${base##*:}"
      ;;
    actorwork/chromium:*)
      log "base image ${base} is missing; building it"
      "${here}/build-chromium-image.sh" --tag "${base}"
      ;;
    *) die "base image ${base} does not exist: build it first (no registry to pull it from)" ;;
  esac
fi

# Binary wheels (msgspec) are built for the host interpreter, so it has to be
# the image's Python minor version.
image_py=$(docker run --rm --label "${AW_LABEL_KEY}.test=1" "${base}" \
  python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_py=$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ ${host_py} == "${image_py}" ]] ||
  die "${python} is Python ${host_py} but ${base} has Python ${image_py}: pass --python pointing at a Python ${image_py}"

# One wheelhouse per flavour, so building one never empties the other's.
wheels_dir=${version}
((chromium)) && wheels_dir=${flavour}-${version}
wheelhouse=${wheelhouse:-$(cache_root)/wheelhouse/${wheels_dir}}
requirement=actorwork${extras:+[${extras}]}==${version}
if ((offline)); then
  [[ -d ${wheelhouse} ]] || die "--offline ${wheelhouse@Q} is not a directory of wheels"
  log "using the wheels in ${wheelhouse} as they are (--offline)"
  commit=${commit}-offline # the actorwork wheel came from elsewhere
else
  log "pip wheel ${requirement} (${commit}) -> ${wheelhouse}"
  rm -rf "${wheelhouse}"
  mkdir -p "${wheelhouse}"
  "${python}" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "${wheelhouse}" \
    "${src}${extras:+[${extras}]}" ||
    die "pip wheel failed: it needs PyPI for the build backend and the dependencies (or use --offline DIR with wheels made elsewhere)"
fi
log "wheelhouse: $(find "${wheelhouse}" -name '*.whl' -printf '%f ' )"

mkdir -p "${work}/context"
cp "${here}/${flavour}/Dockerfile" "${work}/context/"
cp -r "${wheelhouse}" "${work}/context/wheelhouse"

# The classic builder resolves FROM against local images and pulls nothing.
previous=$(image_id "${tag}")
log "docker build -> ${tag} (from ${base})"
DOCKER_BUILDKIT=0 docker build --quiet --pull=false --build-arg "BASE=${base}" \
  --build-arg "REQUIREMENT=${requirement}" \
  --label "org.actorwork.base=${base}" --label "org.actorwork.commit=${commit}" \
  --label "org.actorwork.version=${version}" -t "${tag}" "${work}/context" >/dev/null ||
  die "docker build of ${tag} failed (see above)"
drop_replaced_image "${previous}" "${tag}"

said=$(docker run --rm --label "${AW_LABEL_KEY}.test=1" "${tag}") ||
  die "the new image ${tag} does not run 'actorwork version'"
log "built ${tag} (${said}, commit ${commit}, $(docker image inspect -f '{{.Size}}' "${tag}" |
  numfmt --to=iec)) in $(elapsed "${start}")"
