#!/usr/bin/env bash
# `make install` / `make uninstall`: Matinee as a systemd service on Debian or Ubuntu.
#   install    user `matinee`, /opt/matinee/.venv, /etc/matinee/config.toml (0640, group
#              matinee), /var/lib/matinee (via StateDirectory=), the unit, enabled and started
#   uninstall  stops it and removes every one of those (data included)
# Run as root. Re-running install upgrades Matinee and keeps the configuration and data.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=/opt/matinee
CONFIG_DIR=/etc/matinee
DATA_DIR=/var/lib/matinee
UNIT=/etc/systemd/system/matinee.service
USER_NAME=matinee

[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo make $1" >&2; exit 1; }
have_systemd() { [ -d /run/systemd/system ]; }

install_matinee() {
  # What Matinee runs at run time (the tests need more: .ci/system-deps.sh).
  local runtime=(ffmpeg par2 unar p7zip-full python3-venv ca-certificates)
  local missing=()
  for p in "${runtime[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  id -u "$USER_NAME" >/dev/null 2>&1 || useradd --system --home-dir "$DATA_DIR" \
    --no-create-home --shell /usr/sbin/nologin "$USER_NAME"

  python3 -m venv "$PREFIX/.venv"
  "$PREFIX/.venv/bin/pip" install -q --upgrade pip
  "$PREFIX/.venv/bin/pip" install -q .

  install -d -m 0750 -o root -g "$USER_NAME" "$CONFIG_DIR"
  if [ ! -e "$CONFIG_DIR/config.toml" ]; then
    # The example's relative data_dir is for `make run`; the service keeps its data here.
    sed -e "s|^data_dir = \"data\"|data_dir = \"$DATA_DIR\"|" \
        -e "s|^dir = \"data/downloads\"|dir = \"$DATA_DIR/downloads\"|" \
        config.example.toml > "$CONFIG_DIR/config.toml"
    chown root:"$USER_NAME" "$CONFIG_DIR/config.toml"
    chmod 0640 "$CONFIG_DIR/config.toml"
    echo "Created $CONFIG_DIR/config.toml: add your Usenet server, indexer and TMDB token."
  fi
  "$PREFIX/.venv/bin/matinee" check-config --config "$CONFIG_DIR/config.toml" >/dev/null
  install -m 0644 systemd/matinee.service "$UNIT"
  if have_systemd; then
    systemctl daemon-reload
    systemctl enable --now matinee
    echo "Matinee runs: systemctl status matinee; open http://127.0.0.1:8080/ to choose a password."
  else
    echo "systemd is not running here: the unit is installed; start it with systemctl on boot."
  fi
}

uninstall_matinee() {
  if have_systemd && systemctl list-unit-files matinee.service >/dev/null 2>&1; then
    systemctl disable --now matinee 2>/dev/null || true
  fi
  rm -f "$UNIT"
  if have_systemd; then systemctl daemon-reload; fi
  rm -rf "$PREFIX" "$CONFIG_DIR" "$DATA_DIR"
  if id -u "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME"; fi
  echo "Matinee is gone: no unit, no $PREFIX, no $CONFIG_DIR, no $DATA_DIR, no user."
}

case "${1:-}" in
  install) install_matinee ;;
  uninstall) uninstall_matinee ;;
  *) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
