#!/usr/bin/env bash
# Idempotent setup of the real Nix (Debian bookworm package nix-bin 2.8) for
# single-user, daemon-less use as root.  See the strata README (Testing).
#
#   sudo ./setup.sh            # install + write /etc/nix/nix.conf, print env
#   eval "$(./setup.sh --env)" # only print the env lines (no install)
#   ./setup.sh --no-tools      # skip b3sum/xz/zstd/time (not needed by Nix)
#
# What it does:
#   1. apt-get install nix-bin (and b3sum xz-utils zstd time unless --no-tools)
#      -- only if missing; runs `apt-get update` first when it has to install.
#   2. writes /etc/nix/nix.conf (the Debian original is kept once as
#      /etc/nix/nix.conf.debian-orig) unless it already has this content.
#   3. creates /nix/store and /nix/var/nix/db by running a no-op query.
#   4. prints the environment to use (NIX_REMOTE must be unset or "local":
#      the Debian environment.d snippet sets NIX_REMOTE=daemon for systemd
#      user sessions, and no daemon runs here).
set -euo pipefail

want_tools=1
env_only=0
for a in "$@"; do
  case "$a" in
    --no-tools) want_tools=0 ;;
    --env) env_only=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

print_env() {
  cat <<'EOF'
unset NIX_REMOTE              # no daemon: use the local store directly
export NIX_PAGER=cat          # nix log / --help must not start a pager
# per test run, give Nix a fresh narinfo disk cache (see README "pitfalls"):
#   export XDG_CACHE_HOME="$(mktemp -d)"
EOF
}

if [ "$env_only" = 1 ]; then print_env; exit 0; fi

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: must run as root (writes /etc/nix, /nix)" >&2; exit 1
fi

pkgs=()
command -v nix-store >/dev/null 2>&1 || pkgs+=(nix-bin)
if [ "$want_tools" = 1 ]; then
  command -v b3sum >/dev/null 2>&1 || pkgs+=(b3sum)
  command -v xz >/dev/null 2>&1 || pkgs+=(xz-utils)
  command -v zstd >/dev/null 2>&1 || pkgs+=(zstd)
  [ -x /usr/bin/time ] || pkgs+=(time)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q "${pkgs[@]}" >&2
fi

ver=$(nix-store --version | awk '{print $NF}')
case "$ver" in
  2.8.*) ;;
  *) echo "setup.sh: warning: expected Nix 2.8.x, found $ver (findings in README are for 2.8.0)" >&2 ;;
esac

conf=$(cat <<'EOF'
# Written by scripts/setup-nix.sh -- single-user, daemon-less Nix for tests.
# Builds run as root without a sandbox (the Debian build has no working
# sandbox setup and trivial test derivations use the host's /bin/sh).
sandbox = false
build-users-group =
# `nix ...` (new CLI) subcommands are experimental in 2.8.
experimental-features = nix-command
# No internet: without this every build/realise first retries
# https://cache.nixos.org for ~5 s.
substituters =
# NOTE: the narinfo disk cache ($XDG_CACHE_HOME/nix/binary-cache-v6.sqlite)
# remembers nix-cache-info (7 days) and narinfo hits/misses per cache URL;
# tests should export a fresh XDG_CACHE_HOME per run (see README).
# Keep sigs required (default); pass --no-check-sigs or trusted-public-keys
# explicitly in tests.
require-sigs = true
EOF
)
mkdir -p /etc/nix
if [ -f /etc/nix/nix.conf ] && [ ! -f /etc/nix/nix.conf.debian-orig ] \
   && ! grep -q 'scripts/setup-nix.sh' /etc/nix/nix.conf; then
  cp /etc/nix/nix.conf /etc/nix/nix.conf.debian-orig
fi
if [ "$(cat /etc/nix/nix.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/nix/nix.conf
  echo "setup.sh: wrote /etc/nix/nix.conf" >&2
fi

# Initialise the store (creates /nix/store and the SQLite db on first use).
env -u NIX_REMOTE nix store ping >/dev/null 2>&1
env -u NIX_REMOTE nix --version >&2
print_env
