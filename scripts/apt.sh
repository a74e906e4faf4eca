# Sourced by the install scripts: Debian packages installed as root, or through sudo.
#   apt_install HINT PACKAGE...   install the packages; without apt-get, print HINT (what to install by hand)
#   stop_services SERVICE...      stop the packaged services an init system started (the tests run their own)

_apt_sudo() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "installing needs root (or sudo): $*" >&2
        exit 1
    fi
}

apt_install() {
    local hint="$1"
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$* not found and apt-get is not available: $hint" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when they are missing (a fresh container) or the install fails.
    if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
        _apt_sudo apt-get update -qq
    fi
    if ! _apt_sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
        _apt_sudo apt-get update -qq
        _apt_sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}

stop_services() {
    command -v systemctl >/dev/null 2>&1 || return 0
    local service
    for service in "$@"; do
        if systemctl is-active --quiet "$service" 2>/dev/null; then
            _apt_sudo systemctl stop "$service" || true
        fi
    done
}
