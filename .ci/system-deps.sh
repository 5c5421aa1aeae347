#!/usr/bin/env bash
# Installs the Debian packages Matinee's tests and benchmarks use: the real peers
# (INN2, par2, ffmpeg, unar/7z, NZBGet, nginx, wrk, Chromium, Firefox ESR and a PulseAudio for
# its sound, the AWS CLI, unrar-free for SABnzbd). Idempotent; a no-op when all are present.
set -euo pipefail

# unrar-free: SABnzbd (bench/line.py) will not download without an `unrar` on PATH.
packages=(inn2 par2 ffmpeg unar p7zip-full nzbget nginx-light caddy wrk chromium firefox-esr pulseaudio fonts-dejavu-core python3-venv ca-certificates openssl awscli unrar-free)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# INN2's post-install step needs a fully qualified host name, which build machines often
# lack; a throw-away inn.conf with a domain lets it finish (see README, "Tests").
innboot=$(mktemp -d)
printf 'domain: test.invalid\nserver: localhost\n' > "$innboot/inn.conf"
chmod 755 "$innboot"; chmod 644 "$innboot/inn.conf"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
if ! $SUDO env DEBIAN_FRONTEND=noninteractive INNCONF="$innboot/inn.conf" \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  # The minimal file lacks keys (ovmethod, ...) that the post-install step also reads; by
  # now the package has unpacked its own inn.conf, so take that and add the domain.
  sed -e 's/^#*[[:space:]]*domain:.*/domain: test.invalid/' /etc/news/inn.conf > "$innboot/inn.conf"
  grep -q '^domain:' "$innboot/inn.conf" || echo 'domain: test.invalid' >> "$innboot/inn.conf"
  $SUDO env DEBIAN_FRONTEND=noninteractive INNCONF="$innboot/inn.conf" dpkg --configure -a
fi
# Debian starts the packaged daemons; tests run their own private instances instead.
for svc in inn2 nzbget nginx caddy; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
rm -rf "$innboot"
