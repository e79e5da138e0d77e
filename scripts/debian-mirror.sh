#!/usr/bin/env bash
# Prints the Debian archive mirror this machine's apt is configured with:
# DEBIAN_MIRROR when set, else the URI of the first apt source (one-line
# .list or deb822 .sources, under APT_ETC, default /etc/apt) whose suite is
# the host's own codename (VERSION_CODENAME in OS_RELEASE, default
# /etc/os-release): the main archive, not a security or third-party one.
# Exits 1, saying why, when there is none. Sourced or run.
set -euo pipefail

debian_mirror() {
	if [ -n "${DEBIAN_MIRROR:-}" ]; then
		echo "${DEBIAN_MIRROR%/}"
		return
	fi
	local etc=${APT_ETC:-/etc/apt} release=${OS_RELEASE:-/etc/os-release} codename
	codename=$(. "$release" && echo "${VERSION_CODENAME:-}")
	if [ -z "$codename" ]; then
		echo "debian-mirror: no VERSION_CODENAME in $release; set DEBIAN_MIRROR" >&2
		return 1
	fi
	local f uri
	for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		# deb [options] URI suite components...
		uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v c="$codename" '$1 == "deb" && $3 == c { print $2; exit }')
		if [ -n "$uri" ]; then
			echo "${uri%/}"
			return
		fi
	done
	for f in "$etc"/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		# deb822 stanzas, separated by blank lines: Types, URIs, Suites, ...
		uri=$(awk -v c="$codename" '
			function flush() { if (deb && suite && uris != "") { split(uris, u, " "); print u[1]; found = 1; exit } deb = suite = 0; uris = "" }
			/^[[:space:]]*#/ { next }
			/^[[:space:]]*$/ { flush(); next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { uris = ""; for (i = 2; i <= NF; i++) uris = uris " " $i }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == c) suite = 1 }
			END { if (!found) flush() }' "$f")
		if [ -n "$uri" ]; then
			echo "${uri%/}"
			return
		fi
	done
	echo "debian-mirror: no apt source for $codename in $etc; set DEBIAN_MIRROR" >&2
	return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	debian_mirror
fi
