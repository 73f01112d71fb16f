#!/bin/sh
# Prints the public IPv4 address of this host's network, for mconnect's `command:` strategy:
# the WAN address that a UPnP-enabled router reports (upnpc from miniupnpc), or else this
# host's own global IPv4 address when it has one. Prints nothing and exits 1 when neither is
# known, so mconnect moves on to the next strategy.
set -u
if command -v upnpc >/dev/null 2>&1; then
  address=$(upnpc -s 2>/dev/null | sed -n 's/^ExternalIPAddress = \([0-9.]*\)$/\1/p' | head -n 1)
  if [ -n "$address" ]; then
    printf '%s\n' "$address"
    exit 0
  fi
fi
address=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub("/.*", "", $4); print $4}' |
  grep -Ev '^(10\.|172\.(1[6-9]|2[0-9]|3[01])\.|192\.168\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.)' |
  head -n 1)
[ -n "$address" ] || exit 1
printf '%s\n' "$address"
