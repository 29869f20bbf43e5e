#!/bin/bash
# Builds the lab's base rootfs into $1 (runs on the VM, as root). The cache key
# is a hash of this file, so any change here rebuilds the base image.
set -euo pipefail
ROOT=${1:?usage: build.sh ROOTDIR}

debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,python3,ca-certificates \
  bookworm "$ROOT"

# Keep images small and installs fast: no docs, man pages or translations,
# no recommended packages.
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/01-lab-nodoc" <<'X'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
X
cat >"$ROOT/etc/apt/apt.conf.d/90lab" <<'X'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
X

# Every host gets its own SSH host keys (host prep generates them) and its own
# machine-id (systemd creates one at boot when the file is empty).
rm -f "$ROOT"/etc/ssh/ssh_host_*
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"

# No background apt runs inside lab hosts (they would compete for the CPU and
# the dpkg lock with our own installs).
for u in apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done

# Package lists in the base image, so role builds need no apt-get update.
chroot "$ROOT" apt-get update -qq
chroot "$ROOT" apt-get clean
