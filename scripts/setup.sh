# Set-up shared by scripts/serve and scripts/test (sourced, not run): Debian packages, the
# virtual environment in .venv and the Python dependencies. Idempotent and quick when done.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

# What the controller needs to run, and what the test suite needs on top.
APT_RUN=(python3 python3-venv python3-dev gcc)
# smitools: smilint for the CSM-MIB; snmp: net-snmp's tools; snmpd: the agent the SNMP benchmark compares with.
# chromium: the browser the portal's Playwright tests drive.
APT_TEST=(postgresql iproute2 nftables python3-nftables iperf3 smitools snmp snmpd snmptrapd chromium)

say() { printf 'csmm-setup: %s\n' "$*" >&2; }

ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) -ne 0 ]]; then
        say "missing Debian packages: ${missing[*]}; run as root (or install them) and try again"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
    local python stamp want
    python=$(command -v python3)
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating virtual environment $VENV"
        "$python" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    stamp="$VENV/.csmm-installed"
    want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
    if [[ ! -f "$stamp" || $(cat "$stamp") != "$want" ]]; then
        say "installing Python dependencies into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
        echo "$want" >"$stamp"
    fi
}
