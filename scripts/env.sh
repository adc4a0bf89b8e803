# Sourced by scripts/up.sh and scripts/test.sh: a project virtualenv with the dependencies, then
# the native infrastructure's addresses and secrets in the environment.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export DVC_DATA_DIR=${DVC_DATA_DIR:-$REPO_ROOT/.data}
VENV=${DVC_VENV:-$REPO_ROOT/.venv}

ensure_python_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "Tạo môi trường Python / creating the virtualenv: $VENV"
    python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "Cài thư viện Python / installing Python dependencies"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO_ROOT[dev]"
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
  export VIRTUAL_ENV=$VENV
}

ensure_debian_tools() {
  # docker-compose (v1, Python) only parses and validates docker-compose.yml in the tests.
  if ! command -v docker-compose >/dev/null 2>&1; then
    echo "Cài docker-compose (để kiểm tra tệp compose) / installing docker-compose (compose file validation)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null; }
  fi
  # Debian's Chromium and its WebDriver: the browser tests of the pages and `dvc web screenshots`.
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "Cài Chromium (kiểm thử trang web) / installing Chromium (browser tests of the pages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
  fi
}

load_infra_env() {
  set -a
  # shellcheck disable=SC1091
  . "$DVC_DATA_DIR/infra.env"
  # shellcheck disable=SC1091
  . "$DVC_DATA_DIR/secrets.env"
  set +a
}
