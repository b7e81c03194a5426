#!/bin/sh
# Installs one locked set of packages into the project's virtualenv, or regenerates the locks.
#
#   sh tools/install.sh demo    what `make demo` / `make serve` need (requirements/demo.lock)
#   sh tools/install.sh test    everything `make test` needs (requirements/test.lock, a superset of demo.lock)
#   sh tools/install.sh scan    the IaC scanner checkov (requirements/scan.lock) into VENV=.venv-scan: its pins
#                               conflict with the test set's
#   sh tools/install.sh lock    regenerate the locks from the pins (`make lock`)
#
# Every lock pins every package, transitive ones included, with the sha256 of each of its files; an install
# refuses anything else. The installer is uv, at the version and hashes of requirements/bootstrap.lock,
# installed from PyPI by the machine's pip into $UV_HOME (.uv/) on first use. When uv cannot be had (no
# wheel for this platform, the registry refuses it) or STEPDEPLOY_INSTALLER=pip is set, pip installs the same
# lock with --require-hashes: slower, same result. Regenerating the locks needs uv.
#
# Environment: PYTHON (a Python 3.11), VENV (.venv), UV_HOME (.uv), STEPDEPLOY_INSTALLER (uv|pip).
set -eu

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
UV_HOME=${UV_HOME:-.uv}
REQ=requirements
# uv finds no Python of its own: it uses $PYTHON, and never downloads one.
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1

need_python_311() {
    "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 required, found {sys.version.split()[0]}"'
}

# Prints the path of a working uv (bootstrapping it from PyPI if needed), or nothing when uv cannot be had.
find_uv() {
    [ "${STEPDEPLOY_INSTALLER:-uv}" = pip ] && return 0
    uv="$UV_HOME/bin/uv"
    if [ ! -x "$uv" ]; then
        echo "installing uv ($(grep -o '^uv==[^ ]*' $REQ/bootstrap.lock)) into $UV_HOME/" >&2
        rm -rf "$UV_HOME"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes \
            --target "$UV_HOME" -r $REQ/bootstrap.lock >&2 || true
    fi
    if "$uv" --version >/dev/null 2>&1; then echo "$uv"; else echo "uv could not be installed: pip installs instead" >&2; fi
}

# Installs requirements/$1.lock; `test` and `scan` make the environment exactly the lock (sync), `demo` only adds
# to it. demo and test also install this project editable (no dependencies): the `stepdeploy` command.
install_set() {
    uv=$(find_uv)
    if [ -n "$uv" ]; then
        [ -x "$VENV/bin/python" ] || "$uv" venv --quiet --clear --python "$PYTHON" "$VENV"
        if [ "$1" = demo ]; then verb="install -r"; else verb=sync; fi
        "$uv" pip $verb "$REQ/$1.lock" --quiet --require-hashes --python "$VENV/bin/python"
        [ "$1" = scan ] || "$uv" pip install --quiet --no-deps --editable . --python "$VENV/bin/python"
    else
        [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --clear --without-pip "$VENV"
        pip="$PYTHON -m pip --python $VENV/bin/python --disable-pip-version-check --root-user-action=ignore"
        $pip install --quiet --require-hashes --no-deps -r "$REQ/$1.lock"
        [ "$1" = scan ] || $pip install --quiet --no-deps --editable .
    fi
}

# The test lock keeps every version pinned in requirements-dev.txt and the layer's requirements.txt; the demo
# lock takes its versions from the test lock, so demo.lock is a subset of test.lock.
lock() {
    uv=$(find_uv)
    [ -n "$uv" ] || { echo "make lock needs uv" >&2; exit 1; }
    compile="$uv pip compile --quiet --generate-hashes --python-platform linux"
    compile="$compile --custom-compile-command 'make lock'"
    eval "$compile" --python-version 3.11 --output-file $REQ/bootstrap.lock $REQ/bootstrap.in
    eval "$compile" --python-version 3.11 --output-file $REQ/test.lock requirements-dev.txt layers/common/requirements.txt $REQ/demo.in $REQ/test.in
    eval "$compile" --python-version 3.11 --output-file $REQ/demo.lock --constraint $REQ/test.lock $REQ/demo.in
    # checkov's soupsieve needs Python >= 3.11.5 (the scanner runs on this machine, never in Lambda)
    eval "$compile" --python-version 3.11.5 --output-file $REQ/scan.lock $REQ/scan.in
}

need_python_311
case "${1:-}" in
    demo | test | scan) install_set "$1" ;;
    lock) lock ;;
    *) echo "usage: sh tools/install.sh demo|test|scan|lock" >&2; exit 2 ;;
esac
