#!/usr/bin/env bash
# Installs everything ektp-card needs on a fresh Debian/Ubuntu machine: system packages (apt) and a
# virtual environment in .venv with the package and its extras. Safe to run again: it skips what is there.
# Usage: scripts/install.sh [EXTRAS]   (EXTRAS defaults to "test", e.g. "pcsc,nfc")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"

# pcscd + vsmartcard-vpcd: a real PC/SC stack with a virtual reader; libpcsclite-dev + swig + gcc: to
# build pyscard; pcsc-tools: pcsc_scan for people debugging a reader; libeac-dev, openpace, libssl-dev,
# pkg-config: OpenPACE, the independent PACE implementation the interop tests compile against; openssl:
# the command line that cross-checks our certificates, CRLs and EF.SOD; softhsm2: a real PKCS#11 token;
# libjpeg-turbo-progs: djpeg, an independent decoder for the JPEGs we generate; postgresql: the server
# the registry tests start on loopback (tests/pg_server.py) for the shared-registry (PostgreSQL) backend;
# chromium + fonts-dejavu-core: the real browser the station's tests drive through Playwright (never a
# browser download: Playwright is pointed at Debian's /usr/bin/chromium); opensc: opensc-tool, another
# PC/SC client than ours, which the plugin's reader fixture is tested with.
apt_packages=(pcscd vsmartcard-vpcd libpcsclite-dev swig gcc python3-dev python3-venv pcsc-tools
              libeac-dev libeac3 openpace libssl-dev pkg-config openssl softhsm2
              libjpeg-turbo-progs postgresql chromium fonts-dejavu-core opensc)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]" 2>&1 \
  | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import ektp_card" # fails loudly if the install did not take
