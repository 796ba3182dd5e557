# Shared helpers for the image scripts. Sourced, never run.
#
# Every function either succeeds or stops the script through die() with a
# message that says what to do next.

# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this file
AW_LABEL_KEY=org.actorwork.image

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

die() {
  printf '%s: error: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

need_root() {
  [[ ${EUID} -eq 0 ]] || die "this step needs root (debootstrap, chroot): run it with sudo"
}

require_docker() {
  command -v docker >/dev/null 2>&1 ||
    die "the docker client is not installed: apt-get install docker.io (or docker-ce)"
  docker info >/dev/null 2>&1 ||
    die "no Docker daemon answers on ${DOCKER_HOST:-/var/run/docker.sock}: start it (systemctl start docker, or dockerd &) and check you may use its socket"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The host's Debian codename (bookworm, trixie, ...), from /etc/os-release.
host_release() {
  local codename=""
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [[ -n ${codename} ]] ||
    die "cannot tell the Debian release from /etc/os-release: pass --release CODENAME"
  printf '%s\n' "${codename}"
}

# The first apt source (deb822 *.sources or one-line *.list) serving suite $1,
# excluding the security archive. Falls back to deb.debian.org.
host_mirror() {
  local suite=$1 file uri=""
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f ${file} ]] || continue
    uri=$(awk -v suite="${suite}" '
      /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
      END { if (u != "" && s) print u }' "${file}" | grep -v -- '-security' | head -n 1)
    [[ -n ${uri} ]] && break
  done
  if [[ -z ${uri} ]]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk -v suite="${suite}" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2; exit }')
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# The security archive next to the host's, or Debian's default.
host_security_mirror() {
  local uri
  uri=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
    2>/dev/null | grep -o -E 'https?://[^ ]*debian-security' | head -n 1 || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian-security}"
}

cache_root() { printf '%s\n' "${XDG_CACHE_HOME:-${HOME}/.cache}/actorwork/images"; }

# Seconds since $1 (an epoch second), for the timing lines.
elapsed() { printf '%ss' "$(($(date +%s) - $1))"; }

# After a rebuild, drop the image that $1 (an image id) named before, if it is
# ours (labelled) and nothing else names it; an image still used by a
# container is left, with a note.
drop_replaced_image() {
  local old=$1 tag=$2
  [[ -n ${old} && ${old} != "$(docker image inspect -f '{{.Id}}' "${tag}")" ]] || return 0
  [[ -n $(docker image inspect -f "{{index .Config.Labels \"${AW_LABEL_KEY}\"}}" "${old}" 2>/dev/null) ]] || return 0
  [[ $(docker image inspect -f '{{len .RepoTags}}' "${old}") == 0 ]] || return 0
  docker image rm "${old}" >/dev/null 2>&1 ||
    log "the previous ${tag} (${old:7:12}) is still in use; left in place"
}

# The id $1 names now, or nothing.
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
