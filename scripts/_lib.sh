# Shared helpers for scripts/*.sh (sourced, not run). Messages go to stderr so that a script's stdout
# carries only its answer (a URL), which callers capture with $(...).

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Is process $1 running? A daemon's parent is PID 1, which may be slow to reap it (in a container or VM
# it is often no real init), so an exited process can linger as a zombie that `kill -0` still reports as alive.
pid_alive() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# A port that nothing listens on right now. The kernel picks it (bind to port 0), so two scripts started
# together do not collide the way a fixed or random port can; the small race until the server binds it
# is covered by the callers, which retry on a new port.
free_port() {
    local py
    for py in python3.11 python3 python; do
        if command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
            return
        fi
    done
    # No Python at all: a random high port that refuses connections (nothing listens there).
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# Install Debian packages, once, only when a needed program is missing (CI's fresh machine; developers
# who already have them lose no time). Needs root: anyone else is told what to install.
apt_install() {
    is_root || die "missing $*; install it (sudo apt-get install $*) and retry"
    command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get to install it with"
    log "installing $* from apt"
    export DEBIAN_FRONTEND=noninteractive
    # An old or empty package list makes install fail with "Unable to locate package": refresh it first.
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "$@" >&2
}
