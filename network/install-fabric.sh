#!/usr/bin/env bash
# Installs the Fabric binaries (peer, orderer, configtxgen, cryptogen, osnadmin) with
# `go install` from the Go module proxy into a git-ignored cache folder, and copies the
# peer's and orderer's default configuration (sampleconfig) out of the module cache.
# Then installs the Fabric CA server and client (fabric-ca v1.5.15) into the same folder:
# every org runs its own TLS CA and signing CA (docs/decisions/0012-fabric-ca-per-org.md).
#
# Fabric's go.mod says `module github.com/hyperledger/fabric` (no /v3), so releases are
# installed by commit, as pseudo-versions. See docs/decisions/0001-fabric-binaries.md
# for why a fallback commit exists and why a small local overlay answers `@latest`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FABRIC_HOME="${FABRIC_HOME:-$ROOT/.cache/fabric}"
BIN="$FABRIC_HOME/bin"
MODULE=github.com/hyperledger/fabric
BINARIES=(peer orderer configtxgen configtxlator cryptogen osnadmin)

# Candidates, newest first: "<pseudo-version> <human version>".
# v3.1.5 is commit 86c1172bec37e6590c6b1ae6f847833df48d65fc.
CANDIDATES=(
  "v1.4.0-rc1.0.20260618074816-86c1172bec37 3.1.5"
  "v1.4.0-rc1.0.20260423151550-2190a1c8e067 3.1.4-18-g2190a1c8e"
)
if [[ -n "${FABRIC_MODULE_VERSION:-}" ]]; then
  CANDIDATES=("$FABRIC_MODULE_VERSION ${FABRIC_VERSION_LABEL:-$FABRIC_MODULE_VERSION}")
fi

# Fabric CA: a proper module with semver tags, so the release tag is the module version.
CA_MODULE=github.com/hyperledger/fabric-ca
CA_VERSION="${FABRIC_CA_VERSION:-v1.5.15}"
CA_BINARIES=(fabric-ca-server fabric-ca-client)

say() { printf '\033[1m[fabric]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[fabric] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH. Fabric v3.1 needs Go 1.26.4 or newer to build peer, orderer and the tools. Install Go, then run 'make fabric' again."
GO_VERSION="$(go env GOVERSION)"
case "$GO_VERSION" in
  go1.2[6-9]*|go1.[3-9][0-9]*) ;;
  *) die "Go $GO_VERSION is too old: Fabric v3.1 needs Go 1.26.4 or newer (found $(command -v go))." ;;
esac

all_present() {
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
  [[ -f "$FABRIC_HOME/config/core.yaml" && -f "$FABRIC_HOME/config/orderer.yaml" ]] || return 1
}

ca_present() {
  for b in "${CA_BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
  [[ -f "$FABRIC_HOME/CA_VERSION" && "$(cat "$FABRIC_HOME/CA_VERSION")" == "$CA_VERSION" ]]
}

# `go install pkg@version` looks up the module's latest version to print deprecation
# notices. Some module proxies refuse the version list of this module, which would abort
# the install, so a local file overlay answers only that question, after the real proxy.
OVERLAY="$FABRIC_HOME/goproxy-overlay"
upstream="$(go env GOPROXY)"
upstream="${upstream//,/|}"
upstream="$(tr '|' '\n' <<<"$upstream" | grep -v -E '^(direct|off)$' | paste -sd'|' -)"
[[ -n "$upstream" ]] || die "GOPROXY is '$(go env GOPROXY)': a module proxy is needed to download Fabric."

# overlay_latest MODULE VERSION: the overlay answers `@latest` with VERSION and an empty `@v/list`.
overlay_latest() {
  mkdir -p "$OVERLAY/$1/@v"
  printf '{"Version":"%s"}\n' "$2" >"$OVERLAY/$1/@latest"
  : >"$OVERLAY/$1/@v/list"
}

# Fabric: peer, orderer and the tools, built without cgo; the sampleconfig is copied too.
install_fabric() {
  local installed="" c
  [[ -f "$FABRIC_HOME/VERSION" ]] && installed="$(cat "$FABRIC_HOME/VERSION")"
  if [[ -n "$installed" ]] && all_present; then
    for c in "${CANDIDATES[@]}"; do
      if [[ "$installed" == "${c%% *}" ]]; then
        say "Fabric ${c#* } already installed in $BIN (skipping build)"
        return 0
      fi
    done
  fi

  mkdir -p "$BIN" "$FABRIC_HOME/config"
  started=$(date +%s)
  chosen=""
  for c in "${CANDIDATES[@]}"; do
    version="${c%% *}"; label="${c#* }"
    overlay_latest "$MODULE" "$version"
    export GOPROXY="$upstream|file://$OVERLAY"
    say "checking that the module proxy serves Fabric $label ($MODULE@$version)"
    if go mod download -json "$MODULE@$version" >"$FABRIC_HOME/module.json" 2>"$FABRIC_HOME/download.err" \
        && ! grep -q '"Error"' "$FABRIC_HOME/module.json"; then
      chosen="$c"; break
    fi
    say "Fabric $label is not available from the module proxy: $(grep -h -o -E '[0-9]{3} [A-Za-z ]+|not available|Error[^,]*' "$FABRIC_HOME/download.err" "$FABRIC_HOME/module.json" 2>/dev/null | head -1)"
  done
  [[ -n "$chosen" ]] || die "no Fabric version could be downloaded from the module proxy ($(go env GOPROXY)). Tried: ${CANDIDATES[*]%% *}"
  version="${chosen%% *}"; label="${chosen#* }"
  if [[ "$chosen" != "${CANDIDATES[0]}" ]]; then
    say "using Fabric $label instead of ${CANDIDATES[0]#* }: see docs/decisions/0001-fabric-binaries.md"
  fi

  export CGO_ENABLED=0 GOBIN="$BIN"
  ldflags="-X $MODULE/common/metadata.Version=$label -X $MODULE/common/metadata.CommitSHA=${version##*-}"
  i=0
  for b in "${BINARIES[@]}"; do
    i=$((i + 1)); t=$(date +%s)
    # a binary added to the list later is built alone; the others of this version stay
    if [[ "$installed" == "$version" && -x "$BIN/$b" ]]; then
      say "[$i/${#BINARIES[@]}] $b $label already built"
      continue
    fi
    say "[$i/${#BINARIES[@]}] go install $MODULE/cmd/$b@$version (the first build takes a few minutes)"
    go install -ldflags "$ldflags" "$MODULE/cmd/$b@$version"
    say "[$i/${#BINARIES[@]}] $b built in $(( $(date +%s) - t ))s"
  done

  dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$FABRIC_HOME/module.json")"
  [[ -d "$dir/sampleconfig" ]] || die "module source not found in the module cache ($dir)"
  install -m 0644 "$dir/sampleconfig/core.yaml" "$dir/sampleconfig/orderer.yaml" "$FABRIC_HOME/config/"
  echo "$version" >"$FABRIC_HOME/VERSION"
  echo "$label" >"$FABRIC_HOME/LABEL"
  say "Fabric $label installed in $BIN in $(( $(date +%s) - started ))s"
  "$BIN/peer" version | sed 's/^/  /'
}

# The CA keeps its registry in sqlite (mattn/go-sqlite3), which needs cgo: a CGO_ENABLED=0
# build initialises fine but answers every enroll with HTTP 500.
install_fabric_ca() {
  if ca_present; then
    say "Fabric CA $CA_VERSION already installed in $BIN (skipping build)"
    return 0
  fi
  command -v "$(go env CC)" >/dev/null 2>&1 \
    || die "no C compiler ('$(go env CC)') on PATH: the Fabric CA's sqlite store needs cgo. Install gcc, then run 'make fabric' again."
  mkdir -p "$BIN"
  local started i t b
  started=$(date +%s)
  overlay_latest "$CA_MODULE" "$CA_VERSION"
  say "checking that the module proxy serves Fabric CA $CA_VERSION ($CA_MODULE@$CA_VERSION)"
  GOPROXY="$upstream|file://$OVERLAY" go mod download -json "$CA_MODULE@$CA_VERSION" \
      >"$FABRIC_HOME/ca-module.json" 2>"$FABRIC_HOME/ca-download.err" \
    && ! grep -q '"Error"' "$FABRIC_HOME/ca-module.json" \
    || die "Fabric CA $CA_VERSION is not available from the module proxy: $(grep -h -o -E '[0-9]{3} [A-Za-z ]+|not available|Error[^,]*' "$FABRIC_HOME/ca-download.err" "$FABRIC_HOME/ca-module.json" 2>/dev/null | head -1)"
  i=0
  for b in "${CA_BINARIES[@]}"; do
    i=$((i + 1)); t=$(date +%s)
    say "[$i/${#CA_BINARIES[@]}] go install $CA_MODULE/cmd/$b@$CA_VERSION (cgo on, for sqlite; about a minute)"
    GOPROXY="$upstream|file://$OVERLAY" CGO_ENABLED=1 GOBIN="$BIN" \
      go install -ldflags "-X $CA_MODULE/lib/metadata.Version=${CA_VERSION#v}" "$CA_MODULE/cmd/$b@$CA_VERSION"
    say "[$i/${#CA_BINARIES[@]}] $b built in $(( $(date +%s) - t ))s"
  done
  echo "$CA_VERSION" >"$FABRIC_HOME/CA_VERSION"
  say "Fabric CA $CA_VERSION installed in $BIN in $(( $(date +%s) - started ))s"
  "$BIN/fabric-ca-server" version | sed 's/^/  /'
}

install_fabric
install_fabric_ca
