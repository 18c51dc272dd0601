#!/usr/bin/env bash
# genconf.sh DIR PORT_BASE — writes DIR/prosody.cfg.lua for a throwaway Prosody on loopback that
# loads mod_conference_request from this checkout, and registers the demo accounts.
#
#   c2s  on 127.0.0.1:PORT_BASE+222 (no TLS)     HTTP on 127.0.0.1:PORT_BASE+280 (BOSH, WebSocket, our door)
#   VirtualHost localhost          SASL PLAIN/SCRAM, accounts alice/bob/admin (password "secret")
#   VirtualHost guest.localhost    SASL ANONYMOUS
#   Component conference.localhost "muc"   (memory storage, restrict_room_creation = true)
#   Component breakout.localhost   "muc"   (an extra MUC the module also serves)
#   Component focus.localhost      "conference_request"
#
# Environment hooks:
#   CR_FOCUS                external focus JID → conference_request_focus. When its domain is not
#                           one of the hosts above, a VirtualHost for it is added (e.g. auth.localhost)
#                           and the focus account is registered (password CR_FOCUS_PASSWORD); its
#                           roster gets focus.localhost subscribed to its presence, as Jitsi's
#                           installer does with `mod_roster_command subscribe`; the focus is made an
#                           admin of the MUC components (it creates the rooms, as jicofo does)
#   CR_FOCUS_PASSWORD       the focus account's password (default "secret")
#   CR_PLUGIN_PATHS         colon-separated dirs that replace this checkout as plugin_paths (an
#                           installed copy of the module: `make install`, a LuaRocks tree)
#   CR_EXTRA_PLUGIN_PATHS   colon-separated dirs appended to plugin_paths
#   CR_INSTALLER_PLUGIN_PATH  installer_plugin_path (default <dir>/custom_plugins: never Prosody's
#                           compiled-in /var/lib/prosody/custom_plugins, which every Prosody on the
#                           machine searches before plugin_paths)
#   CR_EXTRA_CONFIG         a file whose text is appended to the config; it lands inside the
#                           Component "focus.localhost" section (the last one) unless it opens a
#                           new section (re-opening that component needs its module name:
#                           Component "focus.localhost" "conference_request"). It must not
#                           repeat an option set above: Prosody 0.12.3 fails on duplicates.
#   CR_GLOBAL_CONFIG        a file whose text is put in the global section (after the settings
#                           above; it must not repeat one of them), e.g. statistics_interval
#   CR_LOG_LEVEL            minimum log level (default info)
#   CR_EMPTY_ROOM_TIMEOUT   conference_request_empty_room_timeout in seconds (default: module's 60)
#   CR_LOG_CONSOLE=1        also log to the console (tests/server/run.sh sets it)
#   CR_AUTH                 conference_request_auth: "xmpp" (auth domain localhost, where alice/bob/admin
#                           live; guest.localhost users are guests) or "jwt" (HS256 secret CR_JWT_SECRET)
#   CR_JWT_SECRET           conference_request_jwt_secret with CR_AUTH=jwt
#   CR_RATE_LIMITS          a Lua value for conference_request_rate_limits (e.g. false: the shared
#                           test servers and the bench); unset = the module's defaults
#   CR_DOMAIN               the server's domain (default localhost): every host above is named after
#                           it (VirtualHost D, guest.D, conference.D, breakout.D, focus.D; accounts
#                           alice@D …; HTTP default host D). A visitor node is e.g. v1.meet.jitsi.
#   CR_S2S=1                federation (README "Visitor servers"): s2s on 127.0.0.1:PORT_BASE+269
#                           without TLS (s2s_require_encryption = false, dialback, s2s_bidi) and the
#                           module's mod_conference_request_s2sout for outgoing connections
#   CR_S2SOUT               with CR_S2S=1, a Lua table for conference_request_s2sout (the domains of
#                           the other servers → "127.0.0.1:PORT"), e.g. { ["localhost"] = "127.0.0.1:21269" }
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 DIR PORT_BASE" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
dir=$(cd "$1" && pwd)
port_base=$2
case $port_base in (*[!0-9]*|'') echo "$0: PORT_BASE must be a number" >&2; exit 2;; esac
c2s_port=$((port_base + 222))
http_port=$((port_base + 280))
s2s_port=$((port_base + 269))
domain=${CR_DOMAIN:-localhost}
case $domain in (*[!a-z0-9.-]*|''|.*|*.) echo "$0: CR_DOMAIN must be a domain of a-z, 0-9, '.', '-'" >&2; exit 2;; esac
level=${CR_LOG_LEVEL:-info}
case $level in (debug|info|warn|error) ;; (*) echo "$0: CR_LOG_LEVEL must be debug, info, warn or error" >&2; exit 2;; esac

lua_str() {  # a Lua string literal
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

plugin_paths=$(lua_str "$repo")
if [ -n "${CR_PLUGIN_PATHS:-}" ]; then
    plugin_paths=""
    IFS=: read -r -a own <<<"$CR_PLUGIN_PATHS"
    for p in "${own[@]}"; do
        [ -n "$p" ] || continue
        plugin_paths="${plugin_paths:+$plugin_paths, }$(lua_str "$(cd "$p" && pwd)")"
    done
fi
if [ -n "${CR_EXTRA_PLUGIN_PATHS:-}" ]; then
    IFS=: read -r -a extra <<<"$CR_EXTRA_PLUGIN_PATHS"
    for p in "${extra[@]}"; do
        [ -n "$p" ] || continue
        plugin_paths="${plugin_paths:+$plugin_paths, }$(lua_str "$(cd "$p" && pwd)")"
    done
fi

run_as_root=false
[ "$(id -u)" = 0 ] && run_as_root=true

console_log=""
if [ "${CR_LOG_CONSOLE:-0}" = 1 ]; then
    console_log="{ levels = { min = $(lua_str "$level") }, to = \"console\" };"
fi

focus_line="-- conference_request_focus: unset (built-in focus)"
focus_host_section=""
focus_node="" focus_domain=""
muc_admins_line="-- admins: the global ones"
if [ -n "${CR_FOCUS:-}" ]; then
    focus_line="conference_request_focus = $(lua_str "$CR_FOCUS")"
    case $CR_FOCUS in
        (*@*) focus_node=${CR_FOCUS%%@*}; focus_domain=${CR_FOCUS#*@} ;;
        (*) echo "$0: CR_FOCUS must be a bare JID such as focus@auth.localhost" >&2; exit 2 ;;
    esac
    case $focus_node$focus_domain in
        (*[!A-Za-z0-9._-]*) echo "$0: CR_FOCUS: only letters, digits, '.', '_' and '-' are supported here" >&2; exit 2 ;;
    esac
    case $focus_domain in
        ("$domain") ;;
        ("guest.$domain"|"conference.$domain"|"breakout.$domain"|"focus.$domain")
            echo "$0: CR_FOCUS must be on a user host (e.g. focus@auth.$domain)" >&2; exit 2 ;;
        (*) focus_host_section="VirtualHost $(lua_str "$focus_domain")" ;;
    esac
    # As in Jitsi's config: the focus is an admin of the MUC, so it may create rooms despite
    # restrict_room_creation.
    muc_admins_line="admins = { $(lua_str "$CR_FOCUS") }"
fi
rate_limits_line="-- conference_request_rate_limits: module defaults"
if [ -n "${CR_RATE_LIMITS:-}" ]; then
    rate_limits_line="conference_request_rate_limits = ${CR_RATE_LIMITS}"
fi
timeout_line="-- conference_request_empty_room_timeout: module default"
auth_lines="-- conference_request_auth: module default (none)"
case ${CR_AUTH:-} in
    ('') ;;
    (none) auth_lines='conference_request_auth = "none"' ;;
    (xmpp) auth_lines="conference_request_auth = \"xmpp\"
    conference_request_auth_domain = $(lua_str "$domain")" ;;
    (jwt)
        [ -n "${CR_JWT_SECRET:-}" ] || { echo "$0: CR_AUTH=jwt needs CR_JWT_SECRET" >&2; exit 2; }
        auth_lines="conference_request_auth = \"jwt\"
    conference_request_jwt_secret = $(lua_str "$CR_JWT_SECRET")" ;;
    (*) echo "$0: CR_AUTH must be none, xmpp or jwt" >&2; exit 2 ;;
esac
if [ -n "${CR_EMPTY_ROOM_TIMEOUT:-}" ]; then
    timeout_line="conference_request_empty_room_timeout = ${CR_EMPTY_ROOM_TIMEOUT}"
fi

global_extra="-- CR_GLOBAL_CONFIG: unset"
if [ -n "${CR_GLOBAL_CONFIG:-}" ]; then
    global_extra="-- from $CR_GLOBAL_CONFIG
$(cat "$CR_GLOBAL_CONFIG")"
fi

s2s_lines='modules_disabled = { "s2s"; "offline" }
s2s_ports = { }'
s2s_modules=""
s2sout_value=${CR_S2SOUT:-"{ }"}
if [ "${CR_S2S:-0}" = 1 ]; then
    # README "Visitor servers": servers on loopback authenticate each other with dialback (no
    # certificates), one connection carries both directions (s2s_bidi), and outgoing connections
    # to the other servers' domains go where CR_S2SOUT says (no DNS, no system file).
    s2s_modules='"dialback"; "s2s_bidi"; "conference_request_s2sout";'
    s2s_lines="modules_disabled = { \"offline\" }
s2s_ports = { $s2s_port }
s2s_interfaces = { \"127.0.0.1\" }
s2s_direct_tls_ports = { }
s2s_require_encryption = false
s2s_secure_auth = false
conference_request_s2sout = $s2sout_value"
elif [ -n "${CR_S2SOUT:-}" ]; then
    echo "$0: CR_S2SOUT needs CR_S2S=1" >&2; exit 2
fi

mkdir -p "$dir/data" "$dir/certs"
cfg="$dir/prosody.cfg.lua"
cat >"$cfg" <<LUA
-- Generated by tests/server/genconf.sh; do not edit (regenerate instead).
run_as_root = $run_as_root
data_path = $(lua_str "$dir/data")
pidfile = $(lua_str "$dir/data/prosody.pid")
admin_socket = $(lua_str "$dir/data/prosody.sock")
certificates = $(lua_str "$dir/certs")
plugin_paths = { $plugin_paths }
installer_plugin_path = $(lua_str "${CR_INSTALLER_PLUGIN_PATH:-$dir/custom_plugins}")
log = {
    { levels = { min = $(lua_str "$level") }, to = "file", filename = $(lua_str "$dir/prosody.log") };
    $console_log
}

modules_enabled = {
    "roster"; "saslauth"; "disco"; "ping"; "time"; "version";
    "http"; "bosh"; "websocket";
    "admin_shell";
    $s2s_modules
}
$s2s_lines
statistics = "internal"

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $c2s_port }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
component_ports = { }
http_ports = { $http_port }
http_interfaces = { "127.0.0.1" }
https_ports = { }
http_default_host = $(lua_str "$domain")
-- README "HTTP bodies and connections": a Content-Length over this is answered 413 before the
-- body is read (Prosody's default: 10 MiB, buffering up to 20 MiB per connection); idle or slow
-- connections are closed after read_timeout seconds (default 840), above bosh_max_wait (120).
http_max_content_size = 1024 * 1024
network_settings = { read_timeout = 150 }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_bosh_secure = true
consider_websocket_secure = true
authentication = "internal_hashed"
storage = "internal"
admins = { $(lua_str "admin@$domain") }
$global_extra

VirtualHost $(lua_str "$domain")

VirtualHost $(lua_str "guest.$domain")
    authentication = "anonymous"

Component $(lua_str "conference.$domain") "muc"
    storage = "memory"
    restrict_room_creation = true
    muc_room_locking = false
    $muc_admins_line

Component $(lua_str "breakout.$domain") "muc"
    storage = "memory"
    restrict_room_creation = true
    muc_room_locking = false
    $muc_admins_line

$focus_host_section

Component $(lua_str "focus.$domain") "conference_request"
    http_host = $(lua_str "$domain")
    conference_request_muc = $(lua_str "conference.$domain")
    conference_request_extra_mucs = { $(lua_str "breakout.$domain") }
    $focus_line
    $timeout_line
    $auth_lines
    $rate_limits_line
LUA

if [ -n "${CR_EXTRA_CONFIG:-}" ]; then
    { echo; echo "-- appended from $CR_EXTRA_CONFIG"; cat "$CR_EXTRA_CONFIG"; } >>"$cfg"
fi

for user in alice bob admin; do
    if ! out=$(prosodyctl --config "$cfg" register "$user" "$domain" secret 2>&1); then
        echo "$0: registering $user@$domain failed (is $cfg valid?):" >&2
        echo "$out" >&2
        exit 1
    fi
done
if [ -n "$focus_node" ]; then
    if ! out=$(prosodyctl --config "$cfg" register "$focus_node" "$focus_domain" "${CR_FOCUS_PASSWORD:-secret}" 2>&1); then
        echo "$0: registering $CR_FOCUS failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    # The roster subscription an operator sets up for a real jicofo (Jitsi's installer runs
    # `prosodyctl mod_roster_command subscribe focus.<domain> focus@auth.<domain>`): the focus
    # account's roster has the module's host with subscription "from", so the focus's presence
    # reaches it. Written in the internal storage format (data/<host>/roster/<user>.dat).
    enc() { local s=$1 out="" c i; for ((i = 0; i < ${#s}; i++)); do c=${s:i:1};
        case $c in ([A-Za-z0-9]) out+=$c ;; (*) out+=$(printf '%%%02x' "'$c") ;; esac; done; printf '%s' "$out"; }
    roster_dir="$dir/data/$(enc "$focus_domain")/roster"
    mkdir -p "$roster_dir"
    cat >"$roster_dir/$(enc "$focus_node").dat" <<ROSTER
return {
	[false] = { version = 1; pending = {}; };
	[$(lua_str "focus.$domain")] = { subscription = "from"; groups = {}; };
};
ROSTER
fi
echo "$cfg"
