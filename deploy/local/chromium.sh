#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test, from Debian's packages.
#
#   deploy/local/chromium.sh install   install it when missing (as root, with apt-get); idempotent
#   deploy/local/chromium.sh path      print the browser's path; exit 1 when there is none
set -euo pipefail

find_browser() {
  local name
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

case "${1:-install}" in
  path)
    find_browser
    ;;
  install)
    if find_browser >/dev/null; then
      exit 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "chromium.sh: installing chromium from Debian's packages" >&2
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
      find_browser >/dev/null
    else
      echo "chromium.sh: chromium is not installed. Install it (Debian/Ubuntu: sudo apt-get install chromium)." >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
