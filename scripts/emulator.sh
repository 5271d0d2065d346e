# Sourced by scripts: makes sure the AWS emulator (moto server, pinned) is installed in .emulator/.
# Herald has no AWS account in development: moto serves real DynamoDB, SQS, SES and SNS APIs on loopback.

HERALD_MOTO_VERSION="5.2.5"
HERALD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERALD_VENV="$HERALD_ROOT/.emulator"

ensure_emulator() {
    if [ -x "$HERALD_VENV/bin/moto_server" ] &&
        [ "$("$HERALD_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" = "$HERALD_MOTO_VERSION" ]; then
        return 0
    fi
    command -v python3 >/dev/null || { echo "error: python3 is needed to run the AWS emulator" >&2; return 1; }
    echo "installing the AWS emulator (moto[server]==$HERALD_MOTO_VERSION) into .emulator/ ..." >&2
    python3 -m venv "$HERALD_VENV" &&
        "$HERALD_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$HERALD_MOTO_VERSION"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_emulator PORT LOGFILE: starts moto in the background, sets EMULATOR_PID, waits until it answers.
start_emulator() {
    local port="$1" log="$2"
    "$HERALD_VENV/bin/python" "$HERALD_ROOT/scripts/emulator.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    EMULATOR_PID=$!
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
            echo "error: the AWS emulator exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "error: the AWS emulator did not answer on port $port within 20 s" >&2
    return 1
}

# The environment the AWS SDK needs to reach the emulator with dummy credentials.
export_emulator_env() {
    export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    export AWS_ACCESS_KEY_ID="test"
    export AWS_SECRET_ACCESS_KEY="test"
    export AWS_EC2_METADATA_DISABLED="true"
    # The emulator is one Python process shared by every parallel test: far slower than AWS under load, so
    # an attempt may take seconds. A timed-out attempt is retried, and a retried send is a duplicate.
    export HERALD_AWS_ATTEMPT_TIMEOUT_MS="${HERALD_AWS_ATTEMPT_TIMEOUT_MS:-30000}"
    export HERALD_AWS_OPERATION_TIMEOUT_MS="${HERALD_AWS_OPERATION_TIMEOUT_MS:-90000}"
}
