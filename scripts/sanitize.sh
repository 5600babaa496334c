#!/usr/bin/env bash
# Builds nnfast's extension with AddressSanitizer + UndefinedBehaviorSanitizer (gcc's runtimes) and
# runs the whole test suite against it. Any ASan report (heap/stack overflow, use after free ...)
# or UBSan report (overflow, misaligned access, bad shift ...) aborts the process, so the suite
# fails on the first finding.
#
#   scripts/sanitize.sh                 # build into build/sanitize, run the whole suite
#   scripts/sanitize.sh tests/test_bad_input.py -k conv   # extra args go to pytest
#   SANITIZE_SKIP_BUILD=1 scripts/sanitize.sh ...          # reuse the last build
#   SANITIZE_FUZZ_SECONDS=60 scripts/sanitize.sh tests/test_fuzz.py   # fuzz under ASan
#
# Python itself is not instrumented, so libasan is preloaded (it must come first in the process);
# leak detection is off because CPython and NumPy keep intentional allocations until exit.
# The build does not touch any installed nnfast: the package is assembled in a temporary
# directory and put first on PYTHONPATH, and the tests run with the interpreter in $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
CXX=${CXX:-g++}
BUILD=${SANITIZE_BUILD_DIR:-$ROOT/build/sanitize}
start=$(date +%s)
stamp() { echo "[sanitize +$(($(date +%s) - start))s] $*"; }

FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
if [[ -z "${SANITIZE_SKIP_BUILD:-}" ]]; then
  stamp "configure ($CXX, $FLAGS)"
  pybind11_dir=$($PY -m pybind11 --cmakedir)
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
    -Dpybind11_DIR="$pybind11_dir" -DPython_EXECUTABLE="$(command -v "$PY")" >/dev/null
  stamp "build"
  cmake --build "$BUILD" -j "${SANITIZE_JOBS:-$(nproc)}" >/dev/null
fi
SO=$(ls "$BUILD"/_core*.so)

PKG=$(mktemp -d)
LOGS=$(mktemp -d)
# NOTE: reports go to files too: pytest captures the test's stderr, and a process that aborts
# takes its captured output with it.
report() {
  local rc=$?
  # NOTE: ASan's "failed to allocate" warnings are expected, not findings: the MemoryError tests
  # ask for impossible sizes, which allocator_may_return_null=1 turns into a null return.
  local found=""
  if compgen -G "$LOGS/*" >/dev/null; then
    found=$(cat "$LOGS"/* | grep -v "WARNING: AddressSanitizer failed to allocate" || true)
  fi
  if [[ -n "$found" ]]; then
    echo "sanitize: sanitizer reports:" >&2
    echo "$found" >&2
    rc=1
  fi
  rm -rf "$PKG" "$LOGS"
  exit $rc
}
trap report EXIT
cp -r "$ROOT/python/nnfast" "$PKG/nnfast"
rm -f "$PKG"/nnfast/_core*.so
cp "$SO" "$PKG/nnfast/"

LIBASAN=$($CXX -print-file-name=libasan.so)
LIBUBSAN=$($CXX -print-file-name=libubsan.so)
export LD_PRELOAD="$LIBASAN:$LIBUBSAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:log_path=$LOGS/asan:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan:${UBSAN_OPTIONS:-}"
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
export NNFAST_FUZZ_SECONDS=${SANITIZE_FUZZ_SECONDS:-${NNFAST_FUZZ_SECONDS:-}}
# Child interpreters started by the tests (fork/env tests) inherit LD_PRELOAD and PYTHONPATH.
cd "$ROOT"
where=$($PY -c 'import nnfast; print(nnfast.__file__)')
[[ "$where" == "$PKG"/* ]] || { echo "sanitize: imported the wrong nnfast: $where" >&2; exit 1; }
stamp "running pytest against the sanitized build ($where)"
$PY -m pytest -q -p no:cacheprovider "$@"
stamp "clean: no ASan/UBSan report"
