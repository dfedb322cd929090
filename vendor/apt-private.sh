# shellcheck shell=bash
# apt-private.sh: a private apt configuration for Debian source packages.
#
# Sourced by vendor/fetch and vendor/update-lock.  It builds an apt option
# list that reads its own sources list, keeps its own state and cache under
# $CCR_CACHE_DIR/apt, and never reads or writes /etc/apt (only the keyring in
# /usr/share/keyrings is used, for signature checking).  The archive URIs are
# taken from the machine's own apt configuration, so no host name is written
# into the repository.

# Debian 13 (trixie) is the source of every pin.  Debian 12 (bookworm) is
# listed too, for the packages whose trixie files the reachable archive
# lacks; the lock says which ones and why.
CCR_SUITES=${CCR_SUITES:-trixie bookworm}
CCR_CACHE_DIR=${CCR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ccr}
APT_DIR=$CCR_CACHE_DIR/apt
APT_KEYRING=${APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Print every archive URI the machine's apt configuration names, one a line.
apt_machine_uris() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		sed -n 's/^[[:space:]]*deb\(-src\)\?[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\3/p' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
	done
}

# Pick the Debian main and security archive URIs ($DEBIAN_MIRROR and
# $DEBIAN_SECURITY_MIRROR override the machine's configuration).
apt_pick_uris() {
	local uris
	uris=$(apt_machine_uris | sed 's:/*$::' | sort -u)
	DEB_URI=${DEBIAN_MIRROR:-$(printf '%s\n' "$uris" | grep -E '/debian$' | head -n 1)}
	SEC_URI=${DEBIAN_SECURITY_MIRROR:-$(printf '%s\n' "$uris" | grep -E '/debian-security$' | head -n 1)}
	[ -n "$DEB_URI" ] || die "no Debian archive URI (ending in /debian) in /etc/apt; set DEBIAN_MIRROR"
	[ -n "$SEC_URI" ] || SEC_URI=${DEB_URI}-security
}

apt_setup() {
	command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian machine"
	[ -r "$APT_KEYRING" ] || die "keyring $APT_KEYRING missing: apt-get install debian-archive-keyring"
	apt_pick_uris
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" || die "cannot create $APT_DIR"
	local s
	for s in $CCR_SUITES; do
		echo "deb-src [signed-by=$APT_KEYRING] $DEB_URI $s main"
		echo "deb-src [signed-by=$APT_KEYRING] $DEB_URI $s-updates main"
		echo "deb-src [signed-by=$APT_KEYRING] $SEC_URI $s-security main"
	done >"$APT_DIR/sources.list"
	APT_OPTS=(
		-o "Dir::Etc::SourceList=$APT_DIR/sources.list"
		-o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$APT_DIR/lists"
		-o "Dir::Cache=$APT_DIR/cache"
		-o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache="
		-o "APT::Sandbox::User=root"
		-o "Acquire::Retries=3"
	)
}

apt_update() {
	apt-get "${APT_OPTS[@]}" -q update >"$APT_DIR/update.log" 2>&1 ||
		die "apt-get update of the private source lists ($CCR_SUITES) failed; see $APT_DIR/update.log"
}

# apt_versions PKG: the source versions the archive offers now, one a line.
apt_versions() {
	apt-cache "${APT_OPTS[@]}" showsrc "$1" 2>/dev/null |
		awk '$1 == "Package:" { p = $2 } $1 == "Version:" && p == "'"$1"'" { print $2 }' | sort -u
}

# apt_checksums PKG VERSION: "file sha256" for each file of that version.
apt_checksums() {
	apt-cache "${APT_OPTS[@]}" showsrc "$1" 2>/dev/null | awk -v P="$1" -v V="$2" '
		/^Package:/ { p = $2; v = ""; inside = 0 }
		/^Version:/ { v = $2 }
		/^[A-Za-z0-9-]+:/ { inside = ($1 == "Checksums-Sha256:") }
		inside && /^ / && p == P && v == V { print $3, $1 }' | sort -u
}

# apt_setup_debs SUITE ARCH: like apt_setup, but for binary packages of one
# suite (SUITE, SUITE-updates, SUITE-security) and one architecture, with
# state under $CCR_CACHE_DIR/apt-debs.  Used by vendor/update-image-lock
# (its sources list is mmdebstrap's mirror) and scripts/build-image.
apt_setup_debs() {
	local suite=$1 arch=$2
	command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian machine"
	[ -r "$APT_KEYRING" ] || die "keyring $APT_KEYRING missing: apt-get install debian-archive-keyring"
	apt_pick_uris
	CCR_SUITES=$suite
	APT_DIR=$CCR_CACHE_DIR/apt-debs
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" || die "cannot create $APT_DIR"
	{
		echo "deb [signed-by=$APT_KEYRING] $DEB_URI $suite main"
		echo "deb [signed-by=$APT_KEYRING] $DEB_URI $suite-updates main"
		echo "deb [signed-by=$APT_KEYRING] $SEC_URI $suite-security main"
	} >"$APT_DIR/sources.list"
	APT_OPTS=(
		-o "Dir::Etc::SourceList=$APT_DIR/sources.list"
		-o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$APT_DIR/lists"
		-o "Dir::State::status=/dev/null"
		-o "Dir::Cache=$APT_DIR/cache"
		-o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache="
		-o "APT::Architecture=$arch"
		-o "APT::Architectures=$arch"
		-o "APT::Sandbox::User=root"
		-o "Acquire::Retries=3"
		-o "Acquire::Languages=none"
	)
}
