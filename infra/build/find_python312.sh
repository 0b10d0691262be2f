#!/usr/bin/env bash
# Prints the path of a Python 3.12 interpreter: $PYTHON312, python3.12 on PATH, or pyenv's.
# Python 3.12 is the Lambda runtime, so the local venv and `sam build` must use it too.
set -u
is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }

for candidate in "${PYTHON312:-}" python3.12; do
  if [ -n "$candidate" ] && is_312 "$candidate"; then
    command -v "$candidate"
    exit 0
  fi
done
# A pyenv shim for python3.12 exists but fails unless 3.12 is selected: ask pyenv directly.
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -t. -k3 -n -r); do
    candidate="$root/versions/$version/bin/python3.12"
    if [ -x "$candidate" ] && is_312 "$candidate"; then
      echo "$candidate"
      exit 0
    fi
  done
fi
echo "error: Python 3.12 not found. Install it (pyenv install 3.12, or your OS package)" \
     "or point PYTHON312 at it: make setup PYTHON312=/path/to/python3.12" >&2
exit 1
