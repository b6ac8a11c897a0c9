#!/bin/sh
# Mutation testing, as docs/mutation.md describes: `sh tests/mutation.sh` from anywhere in the checkout.
# mutmut 3 imports the code under test from src/ (or the root), so this stages a copy of the checkout with
# python/ as src/ in build/mutation (or $MUTATION_DIR) and runs mutmut there with [tool.mutmut] of
# pyproject.toml. Needs the `mutation` extra (pip install -e '.[test,mutation]' -c constraints.txt).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
stage=${MUTATION_DIR:-$root/build/mutation}
python=${PYTHON:-python}
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$root/python" "$stage/src"
cp -R "$root/tests" "$root/julia" "$root/docs" "$root/pyproject.toml" "$root/Project.toml" "$stage/"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
cd "$stage"
unset PYTHONPATH
"$python" -m mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" || true
"$python" "$root/tests/mutation_survivors.py"
