#!/bin/sh
# Re-check survivors of a finished `sh tests/mutation.sh` against today's tests, one mutant at a time:
#   sh tests/mutation_recheck.sh PYTEST_ARGS... < mutant-names
# For each name on stdin: a fresh copy of python/ as src/ in a scratch copy of the staged run (build/mutation,
# or $MUTATION_DIR), `mutmut apply NAME` there, then pytest PYTEST_ARGS from this checkout against that copy.
# The tests are run once on the unmutated copy first; if they fail there, it stops (exit 2).
# Prints "killed NAME" (the tests fail on the mutant) or "SURVIVED NAME". The staged run is left untouched.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
stage=${MUTATION_DIR:-$root/build/mutation}
python=${PYTHON:-python}
case $python in /*) ;; */*) python=$(pwd)/$python ;; esac  # used from another directory below
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -R "$stage/." "$scratch/"
# The tests must pass on the unmutated code first: a test that fails anyway (or does not collect) would
# report every mutant "killed".
rm -rf "$scratch/src" && cp -R "$root/python" "$scratch/src"
if ! (cd "$root" && PYTHONPATH="$scratch/src" "$python" -m pytest -q -x -p no:cacheprovider \
      -m "not slow and not julia and not compile" "$@" >/dev/null 2>&1); then
  echo "the tests fail on the unmutated code: pytest $* (fix them first)" >&2
  exit 2
fi
while read -r name; do
  rm -rf "$scratch/src" && cp -R "$root/python" "$scratch/src"
  find "$scratch/src" -name __pycache__ -prune -exec rm -rf {} +
  if ! (cd "$scratch" && "$python" -m mutmut apply "$name" >/dev/null 2>&1); then echo "APPLY-FAILED $name"; continue; fi
  if (cd "$root" && PYTHONPATH="$scratch/src" "$python" -m pytest -q -x -p no:cacheprovider \
        -m "not slow and not julia and not compile" "$@" >/dev/null 2>&1); then
    echo "SURVIVED $name"
  else
    echo "killed $name"
  fi
done
