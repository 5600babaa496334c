#!/usr/bin/env bash
# Memcheck over a representative subset of the suite against the installed (Release) build:
# every kernel's valid and hostile calls (the bad-input matrix), the reference comparisons on the
# SIMD paths valgrind can run (baseline, AVX2; it does not emulate AVX-512), out= and threads.
#
#   scripts/valgrind.sh                     # the default subset
#   scripts/valgrind.sh tests/test_relu.py  # or any pytest arguments
#   VALGRIND_LEAKS=1 scripts/valgrind.sh     # also count definite leaks (as errors)
#
# Exits non-zero on any memcheck error (invalid read/write, use of uninitialised values in a
# branch, bad free). PYTHONMALLOC=malloc routes CPython's small objects through malloc, so
# memcheck sees them instead of reporting pymalloc's arena tricks; the remaining CPython/NumPy
# noise is in scripts/valgrind-python.supp. Leak checking is off by default: the interpreter
# keeps module-level allocations until exit by design ("still reachable", "possibly lost");
# VALGRIND_LEAKS=1 reports "definitely lost" blocks (nothing points to them any more) as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [[ $# -eq 0 ]]; then
  set -- tests/test_bad_input.py tests/test_relu.py tests/test_gemm.py tests/test_dense.py \
    -k "not torch and not bit_identical and not 200003 and not 65537 and not property"
fi
start=$(date +%s)
export PYTHONMALLOC=malloc NNFAST_NUM_THREADS=${NNFAST_NUM_THREADS:-2}
leaks=(--leak-check=no)
if [[ -n "${VALGRIND_LEAKS:-}" ]]; then
  leaks=(--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite)
fi
valgrind --tool=memcheck --error-exitcode=99 "${leaks[@]}" --num-callers=40 \
  --suppressions=scripts/valgrind-python.supp --gen-suppressions=${VALGRIND_GEN_SUPP:-no} \
  "$PY" -m pytest -q -p no:cacheprovider -x "$@"
echo "[valgrind] clean: no memcheck error ($(($(date +%s) - start)) s)"
