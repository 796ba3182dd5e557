#!/usr/bin/env bash
# Build actorwork/debian-python:<release>: a minimal Debian root made with
# debootstrap from the host's own apt mirror, with Debian's python3 (and venv,
# pip), ca-certificates, tini as PID 1 and a non-root user "actorwork",
# imported into the local Docker engine. No registry is needed.
#
# The finished root is cached as a tarball, so a rebuild (--force) is a
# docker import; --no-cache runs debootstrap again (the .debs stay cached).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "${here}/lib.sh"

# Bump when the root's contents or setup change, so the cached tarball is remade.
ROOT_REV=1
PACKAGES=python3,python3-venv,python3-pip,ca-certificates,tini
AW_UID=1000

usage() {
  cat <<EOF
usage: ${0##*/} [--force] [--no-cache] [--tag TAG] [--release CODENAME] [--mirror URL] [--cache-dir DIR]

  --force       rebuild the image even if TAG exists (reuses the cached root)
  --no-cache    also run debootstrap again instead of reusing the cached root
  --tag TAG     image name (default: actorwork/debian-python:<release>)
  --release     Debian codename (default: the host's, from /etc/os-release)
  --mirror URL  Debian mirror (default: the host's, from /etc/apt/sources.list*)
  --cache-dir   where roots and .debs are kept (default: \${XDG_CACHE_HOME:-\$HOME/.cache}/actorwork/images)
EOF
}

force=0 no_cache=0 tag="" release="" mirror="" cache=""
while (($#)); do
  case $1 in
    --force) force=1 ;;
    --no-cache) no_cache=1 force=1 ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    --release) release=${2:?--release needs a value}; shift ;;
    --mirror) mirror=${2:?--mirror needs a value}; shift ;;
    --cache-dir) cache=${2:?--cache-dir needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done

require_docker
release=${release:-$(host_release)}
mirror=${mirror:-$(host_mirror "${release}")}
security_mirror=$(host_security_mirror)
cache=${cache:-$(cache_root)}
tag=${tag:-actorwork/debian-python:${release}}
arch=$(dpkg --print-architecture)

if image_exists "${tag}" && ((!force)); then
  log "image ${tag} exists; nothing to do (--force rebuilds it)"
  exit 0
fi

key=$(printf '%s\n' "${ROOT_REV}" "${release}" "${arch}" "${mirror}" "${security_mirror}" \
  "${PACKAGES}" "${AW_UID}" | sha256sum | cut -c1-12)
tarball=${cache}/rootfs-${release}-${arch}-${key}.tar
mkdir -p "${cache}/debs"

root=""
cleanup() {
  [[ -n ${root} && -d ${root} ]] || return 0
  # Unmount anything left under the root (deepest first) before deleting it.
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "${root}/" | sort -r || true); do
    umount -l "${m}" || true
  done
  rm -rf --one-file-system "${root}"
}
trap cleanup EXIT

in_root() { chroot "${root}" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

write_apt_config() {
  local suites=${release}
  [[ ${release} == sid || ${release} == unstable ]] || suites="${release} ${release}-updates"
  rm -f "${root}/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "${mirror}" "${suites}"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [[ ${release} != sid && ${release} != unstable ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' \
        "${security_mirror}" "${release}"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"${root}/etc/apt/sources.list.d/debian.sources"
  # Lean installs for every image built on this one.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"${root}/etc/apt/apt.conf.d/90actorwork-no-recommends"
  cat >"${root}/etc/dpkg/dpkg.cfg.d/90actorwork-no-docs" <<'EOF'
# Containers need no manuals; licences stay.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
EOF
}

make_root() {
  root=$(mktemp -d "${cache}/root.XXXXXX")
  chmod 755 "${root}" # it becomes the image's /
  log "debootstrap ${release} (${arch}, minbase) from ${mirror}"
  if ! debootstrap --variant=minbase --arch="${arch}" --include="${PACKAGES}" \
    --cache-dir="${cache}/debs" "${release}" "${root}" "${mirror}"; then
    cp "${root}/debootstrap/debootstrap.log" "${cache}/debootstrap-failed.log" 2>/dev/null || true
    die "debootstrap of ${release} from ${mirror} failed: check that the mirror is reachable (curl -I ${mirror}/dists/${release}/Release) or pass --mirror URL; its log is kept in ${cache}/debootstrap-failed.log"
  fi
  write_apt_config
  cp /etc/resolv.conf "${root}/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
  chmod 755 "${root}/usr/sbin/policy-rc.d"
  mount -t proc proc "${root}/proc"
  log "apt-get upgrade from ${release}-updates and -security"
  in_root apt-get update -qq ||
    die "apt-get update inside the root failed: are ${mirror} and ${security_mirror} reachable?"
  in_root apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade
  in_root useradd --uid "${AW_UID}" --user-group --create-home --shell /bin/bash actorwork
  in_root apt-get clean
  umount "${root}/proc"
  rm -rf "${root}"/var/lib/apt/lists/* "${root}"/var/cache/apt/*.bin \
    "${root}"/var/log/apt/* "${root}"/var/log/*.log "${root}"/var/cache/ldconfig/aux-cache \
    "${root}"/usr/share/man/* "${root}"/usr/share/info/* "${root}"/usr/share/locale/* \
    "${root}/usr/sbin/policy-rc.d" "${root}/debootstrap"
  find "${root}/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  # Docker bind-mounts its own.
  : >"${root}/etc/resolv.conf"
  : >"${root}/etc/hostname"
  log "packing the root into ${tarball}"
  tar --numeric-owner --xattrs -C "${root}" -cf "${tarball}.partial" .
  mv "${tarball}.partial" "${tarball}"
  cleanup
  root=""
}

start=$(date +%s)
if ((no_cache)) || [[ ! -f ${tarball} ]]; then
  need_root
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap (apt-get install debootstrap)"
    apt-get install -y -qq debootstrap >/dev/null ||
      die "debootstrap is missing and apt-get could not install it: apt-get update && apt-get install debootstrap"
  }
  make_root
  log "root ready in $(elapsed "${start}")"
else
  log "reusing the cached root ${tarball} (--no-cache remakes it)"
fi

log "docker import -> ${tag}"
previous=$(image_id "${tag}")
docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change "ENV PYTHONUNBUFFERED=1" \
  --change "LABEL ${AW_LABEL_KEY}=debian-python org.actorwork.release=${release} org.actorwork.root-key=${key}" \
  --change "USER actorwork" \
  --change "WORKDIR /home/actorwork" \
  --change 'ENTRYPOINT ["/usr/bin/tini", "--"]' \
  --change 'CMD ["python3"]' \
  --message "actorwork base: Debian ${release} minbase + python3, from ${mirror}" \
  "${tarball}" "${tag}" >/dev/null
drop_replaced_image "${previous}" "${tag}"

python=$(docker run --rm --label "${AW_LABEL_KEY}.test=1" "${tag}" \
  python3 -c 'import sys; print(sys.version.split()[0])') ||
  die "the new image ${tag} does not run python3"
[[ $(printf '%s\n' "3.11" "${python}" | sort -V | head -n 1) == 3.11 ]] ||
  die "${tag} has Python ${python}; actorwork needs >= 3.11: use a newer --release"
log "built ${tag} (Python ${python}, $(docker image inspect -f '{{.Size}}' "${tag}" |
  numfmt --to=iec)) in $(elapsed "${start}")"
