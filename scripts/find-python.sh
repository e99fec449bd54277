#!/bin/sh
# Print the path of a Python >= 3.12: python3.13, python3.12, python3, then pyenv.
# Exits 1 with a clear message when there is none.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

for cand in python3.14 python3.13 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && ok "$cand"; then
        "$cand" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done

if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)?$' | sort -rV); do
        path=$(PYENV_VERSION="$v" pyenv which python 2>/dev/null) || continue
        if [ -n "$path" ] && ok "$path"; then
            echo "$path"
            exit 0
        fi
    done
fi

echo "error: Backoffice needs Python 3.12 or newer, and none was found" >&2
echo "       (tried python3.14, python3.13, python3.12, python3 and pyenv)." >&2
echo "       Install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2
exit 1
