# Sourced by scripts: pinned Python tools in .tools/, the virtualenv .ci/run installs cfn-lint into.

HERALD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERALD_TOOLS="$HERALD_ROOT/.tools"

# ensure_python_tool PACKAGE VERSION: installs PACKAGE==VERSION into .tools/ unless it is there already.
ensure_python_tool() {
    local package="$1" version="$2"
    if [ "$("$HERALD_TOOLS/bin/python" -c "import importlib.metadata as m; print(m.version('$package'))" 2>/dev/null)" = "$version" ]; then
        return 0
    fi
    command -v python3 >/dev/null || { echo "error: python3 is needed for $package" >&2; return 1; }
    echo "installing $package==$version into .tools/ ..." >&2
    python3 -m venv "$HERALD_TOOLS" &&
        "$HERALD_TOOLS/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
}
