#!/usr/bin/env bash
# Create (first use) or reuse the merlib environment, then link it as ./.venv.
#
# The venv lives in ~/.cache/merlib/venv-<hash>, keyed by tools/env_hash.py (dependency lists,
# the lock, Python version, this script). It is built from requirements.lock (exact versions of
# every package: two machines get the same environment); `tools/setup_env.sh --lock` (make lock)
# regenerates the lock from the ranges in pyproject.toml. A venv is used only once its build
# finished (a `.complete` stamp), so an interrupted install is rebuilt rather than trusted.
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

# From the declared ranges (pyproject.toml): what `--lock` resolves, then freezes.
install_from_ranges() {
    local venv=$1
    # torch first and alone: torchaudio 2.9 needs exactly this torch build.
    quiet "$venv/bin/pip" install "torch==2.9.1" "torchaudio==2.9.*"
    quiet "$venv/bin/pip" install $("$PYTHON" tools/env_hash.py --list runtime) $("$PYTHON" tools/env_hash.py --list dev)
    quiet "$venv/bin/pip" install --no-deps $("$PYTHON" tools/env_hash.py --list no_deps)
}

# From the lock: every package at its exact version, nothing resolved (the lock is the whole
# closure, so --no-deps; the no_deps wheels are in it too, without their unneeded dependencies).
install_from_lock() {
    quiet "$1/bin/pip" install --no-deps -r requirements.lock
}

new_venv() {
    rm -rf "$1"
    mkdir -p "$(dirname "$1")"
    "$PYTHON" -m venv "$1"
    quiet "$1/bin/pip" install --upgrade pip setuptools wheel
}

if [ "${1:-}" = "--lock" ]; then
    # `make lock`: resolve the declared ranges in a scratch venv and write what it got as the lock.
    SCRATCH="$CACHE/lock-scratch"
    echo "merlib setup: resolving pyproject.toml's dependencies in $SCRATCH (~5 min)"
    new_venv "$SCRATCH"
    install_from_ranges "$SCRATCH"
    {
        echo "# Exact versions of every package of the merlib environment: \`make setup\` installs these"
        echo "# (pip install --no-deps -r requirements.lock). Regenerate with \`make lock\` (resolves the"
        echo "# ranges in pyproject.toml on Python $("$PYTHON" -c 'import platform; print(platform.python_version())'), $(date -u +%Y-%m-%d))."
        "$SCRATCH/bin/pip" freeze --exclude-editable | LC_ALL=C sort -f
    } > requirements.lock.tmp
    mv requirements.lock.tmp requirements.lock
    rm -rf "$SCRATCH"
    echo "merlib setup: wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages); make setup builds from it"
    exit 0
fi

HASH=$("$PYTHON" tools/env_hash.py)
VENV="$CACHE/venv-$HASH"
if [ ! -f "$VENV/.complete" ]; then
    echo "merlib setup: building environment $VENV (first use; ~5 min, ~8 GB)"
    new_venv "$VENV"
    if [ -f requirements.lock ]; then install_from_lock "$VENV"; else install_from_ranges "$VENV"; fi
    touch "$VENV/.complete"
fi
# The venv is shared by every checkout with the same dependencies, so merlib itself is installed
# editable from *this* checkout each time the link target differs (a second or two).
if [ "$(cat "$VENV/.merlib_source" 2>/dev/null)" != "$PWD" ]; then
    quiet "$VENV/bin/pip" install --no-deps --no-build-isolation -e .
    echo "$PWD" > "$VENV/.merlib_source"
fi
ln -sfn "$VENV" .venv
