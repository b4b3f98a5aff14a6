#!/usr/bin/env bash
# Create (first use) or reuse the merlib environment, then link it as ./.venv.
#
# The venv lives in ~/.cache/merlib/venv-<hash>, keyed by tools/env_hash.py (dependency lists,
# Python version, this script). A venv is used only once its build finished (a `.complete`
# stamp), so an interrupted install is rebuilt rather than trusted.
set -euo pipefail
set -f  # requirement strings like torchaudio==2.9.* must not be globbed
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CACHE=${MERLIB_CACHE:-$HOME/.cache/merlib}

ensure_system_packages() {
    local missing=()
    command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "merlib setup: installing system packages: ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "merlib setup: missing system packages: ${missing[*]}" >&2
        echo "  Debian/Ubuntu: sudo apt-get install ${missing[*]}" >&2
        echo "  conda:         conda install -c conda-forge espeak-ng   (chromium is only needed for the browser test)" >&2
        # espeak-ng is needed for the demo corpus; chromium only for one test.
        command -v espeak-ng >/dev/null 2>&1 || exit 1
    fi
}

# Run pip quietly; show its output only when it fails. (pip also warns about every configured
# local index that lacks a package, which would bury the real messages.)
quiet() {
    local log status=0
    log=$(mktemp)
    "$@" -q --progress-bar off >"$log" 2>&1 || status=$?
    if [ $status -ne 0 ]; then grep -v "^WARNING: Location" "$log" >&2; fi
    rm -f "$log"
    return $status
}

ensure_system_packages

HASH=$("$PYTHON" tools/env_hash.py)
VENV="$CACHE/venv-$HASH"
if [ ! -f "$VENV/.complete" ]; then
    echo "merlib setup: building environment $VENV (first use; ~5 min, ~8 GB)"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV"
    quiet "$VENV/bin/pip" install --upgrade pip setuptools wheel
    # torch first and alone: torchaudio 2.9 needs exactly this torch build.
    quiet "$VENV/bin/pip" install "torch==2.9.1" "torchaudio==2.9.*"
    quiet "$VENV/bin/pip" install $("$PYTHON" tools/env_hash.py --list runtime) $("$PYTHON" tools/env_hash.py --list dev)
    quiet "$VENV/bin/pip" install --no-deps $("$PYTHON" tools/env_hash.py --list no_deps)
    touch "$VENV/.complete"
fi
# The venv is shared by every checkout with the same dependencies, so merlib itself is installed
# editable from *this* checkout each time the link target differs (a second or two).
if [ "$(cat "$VENV/.merlib_source" 2>/dev/null)" != "$PWD" ]; then
    quiet "$VENV/bin/pip" install --no-deps --no-build-isolation -e .
    echo "$PWD" > "$VENV/.merlib_source"
fi
ln -sfn "$VENV" .venv
