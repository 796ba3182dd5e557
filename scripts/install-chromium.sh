#!/usr/bin/env bash
# Install what actorwork.chromium and its tests need on a Debian host:
# Debian's chromium (the browser of [chromium] mode = "local") and fonts for it.
# The PDF checks of the tests use pypdf, from the project's test extra.
#
# Idempotent: does nothing when chromium is already on PATH (--force reinstalls).
# Needs root (or sudo) and Debian's package archive; nothing else is downloaded.
set -euo pipefail

force=0
case ${1:-} in
  --force) force=1 ;;
  -h | --help)
    echo "usage: ${0##*/} [--force]   install Debian's chromium and fonts-liberation"
    exit 0
    ;;
  "") ;;
  *) echo "${0##*/}: unknown argument '$1'" >&2; exit 2 ;;
esac

if command -v chromium >/dev/null 2>&1 && ((!force)); then
  echo "${0##*/}: $(chromium --version 2>/dev/null || echo chromium) is installed; nothing to do"
  exit 0
fi

sudo=()
if (($(id -u) != 0)); then
  command -v sudo >/dev/null 2>&1 || { echo "${0##*/}: needs root or sudo" >&2; exit 1; }
  sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "${0##*/}: installed $(chromium --version 2>/dev/null)"
