#!/usr/bin/env bash
# kustomize, for the test that renders deploy/kustomization.yaml, built from the Go module proxy
# (the same kustomize that `kubectl apply -k` embeds). Needs Go 1.22 or newer.
#
#   deploy/local/kustomize.sh install   build it when missing (idempotent; about a minute)
#   deploy/local/kustomize.sh path      print its path; exit 1 when there is none
set -euo pipefail

VERSION="${LEADSTREAM_KUSTOMIZE_VERSION:-v5.7.1}"
PREFIX="${LEADSTREAM_CACHE:-$HOME/.cache/leadstream}/kustomize-$VERSION"
BINARY="$PREFIX/bin/kustomize"

case "${1:-install}" in
  path)
    if [ -x "$BINARY" ]; then
      echo "$BINARY"
    elif command -v kustomize >/dev/null 2>&1; then
      command -v kustomize
    else
      exit 1
    fi
    ;;
  install)
    if [ -x "$BINARY" ]; then
      exit 0
    fi
    if ! command -v go >/dev/null 2>&1; then
      echo "kustomize.sh: Go is not installed; install Go (https://go.dev/doc/install) or kustomize itself." >&2
      exit 1
    fi
    echo "kustomize.sh: building kustomize $VERSION with go install (into $PREFIX)" >&2
    mkdir -p "$PREFIX/bin"
    GOBIN="$PREFIX/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$VERSION"
    test -x "$BINARY"
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
