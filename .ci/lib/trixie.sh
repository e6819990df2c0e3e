# Sourced by the .ci scripts: fetch packages from Debian trixie without touching the system.
#
# trixie_fetch DEST PKG...  downloads PKG... (exactly these, no dependencies) from trixie with a
# private APT configuration (its own sources list, lists, cache and an empty dpkg status;
# /etc/apt is only read for its keyrings) and unpacks each into DEST with dpkg-deb -x. Nothing
# is installed with dpkg, /etc/apt is not changed, and no library of the system is replaced:
# what DEST gets runs beside the system's own packages.

trixie_fetch() {
  local dest=$1 work deb
  shift
  work=$(mktemp -d)
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" \
    "$work/etc/sources.list.d" "$work/deb"
  echo "deb http://deb.debian.org/debian trixie main" >"$work/etc/sources.list"
  : >"$work/status"
  cat >"$work/apt.conf" <<CONF
Dir::Etc::SourceList "$work/etc/sources.list";
Dir::Etc::SourceParts "$work/etc/sources.list.d";
Dir::Etc::Preferences "$work/etc/preferences";
Dir::Etc::PreferencesParts "$work/etc/preferences.d";
Dir::State::Lists "$work/lists";
Dir::State::status "$work/status";
Dir::Cache "$work/cache";
Dir::Cache::archives "$work/cache/archives";
APT::Architecture "amd64";
APT::Sandbox::User "root";
CONF
  # A subshell, so that APT_CONFIG never leaks into the caller's later apt-get calls.
  (
    export APT_CONFIG="$work/apt.conf"
    apt-get -qq update >&2
    cd "$work/deb" && apt-get -qq download "$@" >&2
  ) || { rm -rf "$work"; return 1; }
  mkdir -p "$dest"
  for deb in "$work"/deb/*.deb; do
    dpkg-deb -x "$deb" "$dest"
  done
  rm -rf "$work"
}
