#!/bin/sh
# vdc-metadata: configure this instance at boot from the cloud's metadata server.
#
# Installed by `vdc-manage image prepare --for cloud` as /usr/local/sbin/vdc-metadata and run at
# boot: by vdc-metadata.service on systemd guests (after network-online.target; nothing waits for
# it), from rc.local on SysV guests. Wakame-vdc's metadata server speaks the EC2 interface:
#   http://169.254.169.254/latest/meta-data/<key>
# It
#   - makes SSH host keys that are missing (prepared images ship without any);
#   - sets the host name from local-hostname;
#   - installs public-keys/0/openssh-key in root's authorized_keys;
# and logs each thing it does to /var/log/vdc-metadata.log (and syslog when there is one).
# It waits for the network (retries, VDC_METADATA_DEADLINE seconds at most), and when the server
# stays unreachable, answers 404 or answers nonsense, it changes nothing it was not sure of and
# exits 0: boot goes on. `--host-keys` only makes the missing host keys (vdc-ssh-host-keys.service
# runs it before sshd): `ssh-keygen -A` where the guest's OpenSSH has it (5.8+: exactly the types
# it supports), else one key per type, DSA only for OpenSSH before 7.0.
#
# One script for both families; the differences are in the *_debian / *_redhat functions.
# POSIX sh (dash, busybox sh, bash); fetches with curl, wget (GNU or BusyBox), `busybox wget`, or
# Python (2.4+ or 3) as the last resort, whichever the guest has.
#
# Usage: vdc-metadata [--url BASE_URL] [--root DIR] [--host-keys]
# Environment (for tests and unusual clouds):
#   VDC_METADATA_URL      base URL (default http://169.254.169.254/latest/meta-data)
#   ROOT                  act on this directory instead of / (nothing outside it is touched,
#                         and no live command such as hostname or a service restart runs)
#   VDC_METADATA_TRIES    attempts while the network comes up (default 30)
#   VDC_METADATA_DELAY    seconds between attempts (default 2)
#   VDC_METADATA_DEADLINE seconds of tries in all, whatever TRIES says (default 20)
#   VDC_METADATA_TIMEOUT  seconds per request (default 5)
#   VDC_METADATA_HTTP     curl, wget, busybox or python (default: the first one found)
#   VDC_METADATA_FAMILY   debian or redhat (default: from /etc/debian_version, /etc/redhat-release)

URL=${VDC_METADATA_URL:-http://169.254.169.254/latest/meta-data}
ROOT=${ROOT:-}
TRIES=${VDC_METADATA_TRIES:-30}
DELAY=${VDC_METADATA_DELAY:-2}
TIMEOUT=${VDC_METADATA_TIMEOUT:-5}
DEADLINE=${VDC_METADATA_DEADLINE:-20}
HTTP=${VDC_METADATA_HTTP:-}
HOST_KEYS_ONLY=no
FAMILY=${VDC_METADATA_FAMILY:-}
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
LC_ALL=C  # character ranges and classes below mean ASCII
export PATH LC_ALL

while [ $# -gt 0 ]; do
    case $1 in
        --url) URL=$2; shift 2 ;;
        --root) ROOT=$2; shift 2 ;;
        --host-keys) HOST_KEYS_ONLY=yes; shift ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "vdc-metadata: unknown argument: $1" >&2; exit 2 ;;
    esac
done
URL=${URL%/}
ROOT=${ROOT%/}
LOG=$ROOT/var/log/vdc-metadata.log
umask 022

log() {
    line="$(date '+%Y-%m-%d %H:%M:%S' 2>/dev/null) vdc-metadata: $*"
    if [ -d "$ROOT/var/log" ]; then
        echo "$line" >>"$LOG" 2>/dev/null
    fi
    echo "$line" >&2
    # Under systemd stderr already is the journal (and the console): no second copy through syslog.
    if [ -z "$ROOT" ] && [ -z "${JOURNAL_STREAM:-}" ] && command -v logger >/dev/null 2>&1; then
        logger -t vdc-metadata -- "$*" 2>/dev/null
    fi
}

live() {  # true when acting on the running system, not on a directory
    [ -z "$ROOT" ]
}

pick_http() {
    if [ -n "$HTTP" ]; then
        return 0
    fi
    if command -v curl >/dev/null 2>&1; then
        HTTP=curl
    elif command -v wget >/dev/null 2>&1; then
        HTTP=wget
    elif command -v busybox >/dev/null 2>&1 && busybox wget --help >/dev/null 2>&1; then
        HTTP=busybox
    elif PYTHON=$(pick_python); then
        HTTP=python
    else
        HTTP=none
    fi
}

pick_python() {
    for candidate in python3 python python2; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# One GET with Python's standard library: exit 0 with the body, 1 for an HTTP error, 2 for no
# answer. Written for Python 2.4 (CentOS 5) as much as Python 3.
PY_FETCH='
import socket, sys
socket.setdefaulttimeout(float(sys.argv[2]))
try:
    from urllib.request import urlopen, ProxyHandler, build_opener
    from urllib.error import HTTPError
except ImportError:
    from urllib2 import urlopen, ProxyHandler, build_opener, HTTPError
try:
    body = build_opener(ProxyHandler({})).open(sys.argv[1]).read()
except HTTPError:
    sys.exit(1)
except Exception:
    sys.exit(2)
getattr(sys.stdout, "buffer", sys.stdout).write(body)
'


# fetch KEY: the body on stdout. Exit 0: got it; 1: the server answered with an error (404 ...);
# 2: no answer (network down, timeout, no HTTP client).
fetch() {
    case $HTTP in
        python)
            "${PYTHON:-$(pick_python)}" -c "$PY_FETCH" "$URL/$1" "$TIMEOUT" 2>/dev/null
            return $?
            ;;
        busybox)
            WGET="busybox wget" busybox_wget "$1"
            return $?
            ;;
        curl)
            curl -fsS --max-time "$TIMEOUT" "$URL/$1" 2>/dev/null
            rc=$?
            case $rc in 0) return 0 ;; 22) return 1 ;; *) return 2 ;; esac
            ;;
        wget)
            if wget --version 2>/dev/null | grep -q 'GNU Wget'; then
                wget -q -T "$TIMEOUT" -t 1 -O - "$URL/$1" 2>/dev/null
                rc=$?
                case $rc in 0) return 0 ;; 8) return 1 ;; *) return 2 ;; esac
            fi
            busybox_wget "$1"
            return $?
            ;;
    esac
    return 2
}

# BusyBox's wget (the one a busybox shell runs) has no timeout option and exits 1 on any
# failure: -S prints the server's status line on stderr, which tells "answered" from "no answer".
busybox_wget() {
    err=${TMPDIR:-/tmp}/vdc-metadata.$$.err
    if [ -z "${WGET:-}" ] && command -v busybox >/dev/null 2>&1; then
        WGET="busybox wget"  # timeout execs a file: an applet the shell alone knows is not one
    fi
    if command -v timeout >/dev/null 2>&1; then
        timeout "$TIMEOUT" ${WGET:-wget} -q -S -O - "$URL/$1" 2>"$err"
    else
        ${WGET:-wget} -q -S -O - "$URL/$1" 2>"$err"
    fi
    rc=$?
    answered=no
    if grep -q 'HTTP/' "$err" 2>/dev/null; then
        answered=yes
    fi
    rm -f "$err"
    if [ "$rc" -eq 0 ]; then
        return 0
    fi
    if [ "$answered" = yes ]; then
        return 1
    fi
    return 2
}

now() {
    date +%s 2>/dev/null || echo 0
}

# wait_for_server: true once the server answers at all (even with an error), false after TRIES
# attempts or DEADLINE seconds, whichever comes first (a request in flight may end after it).
wait_for_server() {
    try=1
    started=$(now)
    while [ "$try" -le "$TRIES" ]; do
        fetch instance-id >/dev/null
        case $? in 0|1) return 0 ;; esac
        elapsed=$(( $(now) - started ))
        if [ "$try" -ge "$TRIES" ] || [ "$elapsed" -ge "$DEADLINE" ]; then
            break
        fi
        sleep "$DELAY"
        try=$((try + 1))
    done
    WAITED="$try tries, ${elapsed}s"
    return 1
}

first_line() {
    sed -n '1{s/\r$//;p;}'
}

valid_hostname() {
    name=$1
    [ -n "$name" ] && [ "${#name}" -le 253 ] || return 1
    case $name in
        *[!A-Za-z0-9.-]*|-*|.*|*.|*..*) return 1 ;;
    esac
    return 0
}

valid_public_key() {
    key=$1
    [ "${#key}" -le 16384 ] || return 1
    case $key in
        *[![:print:]]*) return 1 ;;
        ssh-rsa\ ?*|ssh-dss\ ?*|ssh-ed25519\ ?*|ecdsa-sha2-nistp*\ ?*|sk-*\ ?*) return 0 ;;
    esac
    return 1
}

# replace_line FILE REGEX LINE: the first line matching REGEX (read by grep and awk) becomes LINE, or LINE
# is appended; the file keeps its inode, owner and mode.
replace_line() {
    file=$1 pattern=$2 line=$3
    if [ -f "$file" ] && grep -q "$pattern" "$file"; then
        tmp="$file.vdc-metadata.$$"
        # ENVIRON, not awk -v: -v would interpret the backslashes of the pattern
        PAT=$pattern NEW=$line awk '!done && $0 ~ ENVIRON["PAT"] { print ENVIRON["NEW"]; done = 1; next } { print }' \
            "$file" >"$tmp" && cat "$tmp" >"$file"
        rm -f "$tmp"
    else
        echo "$line" >>"$file"
    fi
}

# -- per family -------------------------------------------------------------------------

detect_family() {
    if [ -n "$FAMILY" ]; then
        return 0
    fi
    if [ -f "$ROOT/etc/debian_version" ]; then
        FAMILY=debian
    elif [ -f "$ROOT/etc/redhat-release" ]; then
        FAMILY=redhat
    else
        FAMILY=other
    fi
}

set_hostname_debian() {
    echo "$1" >"$ROOT/etc/hostname"
}

set_hostname_redhat() {
    replace_line "$ROOT/etc/sysconfig/network" '^HOSTNAME=' "HOSTNAME=$1"
}

restart_sshd_debian() {
    [ -x /etc/init.d/ssh ] && /etc/init.d/ssh restart
}

restart_sshd_redhat() {
    [ -x /etc/init.d/sshd ] && /etc/init.d/sshd restart
}

restart_sshd_systemd() {  # a start limit hit meanwhile would refuse a plain restart
    systemctl reset-failed ssh.service sshd.service >/dev/null 2>&1
    systemctl try-restart ssh.service sshd.service >/dev/null 2>&1
}

set_hostname() {
    case $FAMILY in
        redhat) set_hostname_redhat "$1" ;;
        *) set_hostname_debian "$1" ;;
    esac
    short=${1%%.*}
    if [ "$short" = "$1" ]; then names=$1; else names="$1 $short"; fi
    replace_line "$ROOT/etc/hosts" '^127\.0\.1\.1[[:space:]]' "127.0.1.1	$names"
    if live; then
        hostname "$1"
    fi
}

restart_sshd() {
    live || return 0
    if [ -d /run/systemd/system ]; then
        restart_sshd_systemd
        return 0
    fi
    case $FAMILY in
        redhat) restart_sshd_redhat ;;
        *) restart_sshd_debian ;;
    esac
}

# -- the work ---------------------------------------------------------------------------

host_keys() {
    ls "$ROOT"/etc/ssh/ssh_host_*_key 2>/dev/null
}

# OpenSSH's version as a number (9.2 -> 902); 0 when unknown.
openssh_version() {
    ssh -V 2>&1 | sed -n 's/^OpenSSH_\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | {
        read -r major minor && echo $((major * 100 + minor)) || echo 0
    }
}

keygen_all() {  # -A makes every missing key of the types this OpenSSH supports
    if live; then
        ssh-keygen -A
    else
        ssh-keygen -A -f "$ROOT"
    fi
}

make_host_keys() {
    dir=$ROOT/etc/ssh
    if [ ! -d "$dir" ]; then
        return 0
    fi
    if ! command -v ssh-keygen >/dev/null 2>&1; then
        log "no ssh-keygen: cannot make SSH host keys"
        return 0
    fi
    before=$(host_keys)
    if keygen_all </dev/null >/dev/null 2>&1; then
        for key in $(host_keys); do
            case " $(echo $before) " in *" $key "*) ;; *) log "made SSH host key $key" ;; esac
        done
        if [ "$(host_keys)" != "$before" ]; then
            restart_sshd
        fi
        return 0
    fi
    types="rsa ecdsa ed25519"  # an OpenSSH without -A (before 5.8): one key per type
    if [ "$(openssh_version)" -lt 700 ]; then
        types="rsa dsa ecdsa ed25519"
    fi
    made=0
    for type in $types; do
        key=$dir/ssh_host_${type}_key
        if [ -e "$key" ]; then
            continue
        fi
        if ssh-keygen -q -t "$type" -N '' -f "$key" </dev/null >/dev/null 2>&1; then
            log "made SSH host key $key"
            made=1
        else
            rm -f "$key" "$key.pub"
            log "ssh-keygen here cannot make $type keys; skipped"
        fi
    done
    if [ "$made" = 1 ]; then
        restart_sshd
    fi
}

configure_hostname() {
    body=$(fetch local-hostname)
    rc=$?
    if [ "$rc" -ne 0 ]; then
        log "no local-hostname from $URL: host name left as it is"
        return 0
    fi
    name=$(printf '%s\n' "$body" | first_line | tr -d ' \t')
    if ! valid_hostname "$name"; then
        log "local-hostname is not a valid host name: host name left as it is"
        return 0
    fi
    set_hostname "$name"
    log "host name set to $name"
}

install_public_key() {
    body=$(fetch public-keys/0/openssh-key)
    if [ $? -ne 0 ]; then
        log "no public key offered by $URL"
        return 0
    fi
    key=$(printf '%s\n' "$body" | first_line)
    if ! valid_public_key "$key"; then
        log "public-keys/0/openssh-key is not an OpenSSH public key: not installed"
        return 0
    fi
    dir=$ROOT/root/.ssh
    file=$dir/authorized_keys
    mkdir -p "$dir" && chmod 700 "$dir" || { log "cannot create $dir"; return 0; }
    if [ -f "$file" ] && grep -qxF "$key" "$file"; then
        log "public key already in $file"
    else
        printf '%s\n' "$key" >>"$file" || { log "cannot write $file"; return 0; }
        log "public key installed in $file"
    fi
    chmod 600 "$file"
    if [ "$(id -u)" = 0 ]; then
        chown 0:0 "$dir" "$file" 2>/dev/null
    fi
}

main() {
    detect_family
    make_host_keys
    if [ "$HOST_KEYS_ONLY" = yes ]; then
        return 0
    fi
    pick_http
    if [ "$HTTP" = none ]; then
        log "no HTTP client (curl, wget, busybox wget or python): metadata not fetched"
        return 0
    fi
    if ! wait_for_server; then
        log "metadata server $URL unreachable after $WAITED: nothing else changed"
        return 0
    fi
    configure_hostname
    install_public_key
}

main
exit 0
