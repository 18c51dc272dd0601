#!/usr/bin/env bash
# run.sh — `make run`: a demo Prosody with mod_conference_request on loopback, in the foreground.
# Config and data in run/ at the top of the checkout (git-ignored); ports CR_PORT_BASE (default
# 15000) + 222 (c2s) and + 280 (HTTP). Prints how to try it once the server is ready; Ctrl-C stops it.
# External focus: `make run CONFERENCE_REQUEST_FOCUS=focus@auth.localhost` (or CR_FOCUS=…) sets
# conference_request_focus, adds the focus's host and account (password CR_FOCUS_PASSWORD, default
# "secret") and prints how to attach a focus (tests/integration/focus_client.py, or a jicofo).
# Authentication: `make run CONFERENCE_REQUEST_AUTH=xmpp` (users of localhost create rooms, SASL
# ANONYMOUS users of guest.localhost are guests) or `make run CONFERENCE_REQUEST_AUTH=jwt
# CONFERENCE_REQUEST_JWT_SECRET=<secret>` (HS256 tokens; a sample token and a curl line are printed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir="$repo/run"
port_base=${CR_PORT_BASE:-15000}
http_port=$((port_base + 280))
c2s_port=$((port_base + 222))

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$http_port" "$c2s_port"; do
    if port_open "$p"; then
        echo "run.sh: port $p on 127.0.0.1 is in use (another server?); try CR_PORT_BASE=16000 make run" >&2
        exit 1
    fi
done

focus=${CONFERENCE_REQUEST_FOCUS:-${CR_FOCUS:-}}
focus_password=${CR_FOCUS_PASSWORD:-secret}
auth=${CONFERENCE_REQUEST_AUTH:-${CR_AUTH:-}}
jwt_secret=${CONFERENCE_REQUEST_JWT_SECRET:-${CR_JWT_SECRET:-}}
case $auth in
    (''|none|xmpp) ;;
    (jwt) [ -n "$jwt_secret" ] || { echo "run.sh: CONFERENCE_REQUEST_AUTH=jwt needs CONFERENCE_REQUEST_JWT_SECRET=<secret>" >&2; exit 2; } ;;
    (*) echo "run.sh: CONFERENCE_REQUEST_AUTH must be none, xmpp or jwt" >&2; exit 2 ;;
esac

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# A demo HS256 token for the room "demo" (Jitsi's claims), valid 24 h.
demo_token() {
    local header payload sig
    header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"iss":"demo","aud":"jitsi","sub":"localhost","room":"demo","exp":%d,"context":{"user":{"id":"demo-user","name":"Demo User","moderator":true},"group":"demo-group"}}' \
        $(( $(date +%s) + 86400 )) | b64url)
    sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$jwt_secret" -binary | b64url)
    printf '%s.%s.%s' "$header" "$payload" "$sig"
}

rm -f "$dir/data/prosody.pid"
CR_FOCUS="$focus" CR_FOCUS_PASSWORD="$focus_password" CR_LOG_CONSOLE=1 CR_AUTH="$auth" CR_JWT_SECRET="$jwt_secret" \
    "$repo/tests/server/genconf.sh" "$dir" "$port_base" >/dev/null
prosody -F --config "$dir/prosody.cfg.lua" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0' INT TERM

base="http://localhost:$http_port"
for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || { echo "run.sh: prosody exited; see $dir/prosody.log" >&2; exit 1; }
    if curl -fsS -o /dev/null -m 2 "$base/conference-request/v1/health" 2>/dev/null && port_open "$c2s_port"; then
        mode="built-in focus (the module is the focus)"
        [ -n "$focus" ] && mode="external focus $focus"
        [ -n "$auth" ] && mode="$mode; conference_request_auth = $auth"
        cat <<TXT

======================================================================================
 mod_conference_request demo is running (Prosody pid $pid, config $dir/prosody.cfg.lua)
 mode        $mode

 HTTP door   $base/conference-request/v1
   curl -sS -H 'Content-Type: application/json' -d '{"room":"demo@conference.localhost","properties":{"startMuted":"true"}}' $base/conference-request/v1
   curl -sS $base/conference-request/v1/health
 XMPP        c2s 127.0.0.1:$c2s_port (no TLS; PLAIN/SCRAM)
   login     alice@localhost / secret   (also bob@localhost, admin@localhost; same password)
   guests    SASL ANONYMOUS on guest.localhost
   request   <iq type='set' to='focus.localhost' id='1'><conference xmlns='http://jitsi.org/protocol/focus' room='demo@conference.localhost'/></iq>
 BOSH        $base/http-bind    WebSocket  ws://localhost:$http_port/xmpp-websocket
 MUC         conference.localhost (also breakout.localhost); the module is focus.localhost
 operator    prosodyctl --config $dir/prosody.cfg.lua shell 'conference_request:rooms()'
 log         $dir/prosody.log      stop: Ctrl-C
======================================================================================

TXT
        if [ "$auth" = xmpp ]; then
            cat <<TXT
 Authentication: xmpp (conference_request_auth_domain = "localhost")
   alice@localhost (and bob, admin) may create rooms; the answer carries session-id and identity.
   guests (SASL ANONYMOUS on guest.localhost) and HTTP requests join existing rooms only; a missing
   room is not-authorized / 403. A guest on the same machine creates with the session:
   <conference xmlns='http://jitsi.org/protocol/focus' room='demo@conference.localhost' machine-uid='m1'/>  (as alice)
   <conference xmlns='http://jitsi.org/protocol/focus' room='new@conference.localhost' machine-uid='m1' session-id='<from alice>'/>  (as a guest)
   <login-url xmlns='http://jitsi.org/protocol/focus' room='demo@conference.localhost' machine-uid='m1'/>  (IQ get)
   <logout xmlns='http://jitsi.org/protocol/focus' session-id='…'/>  (IQ set)
======================================================================================

TXT
        elif [ "$auth" = jwt ]; then
            token=$(demo_token)
            cat <<TXT
 Authentication: jwt (HS256 with the secret you gave; sub = localhost)
   sample token for the room demo (24 h, moderator):
   $token
   curl -sS -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \\
        -d '{"room":"demo@conference.localhost"}' $base/conference-request/v1
   without the token a missing room is 403; XMPP: token='…' on <conference/>
======================================================================================

TXT
        fi
        if [ -n "$focus" ]; then
            cat <<TXT
 External focus: requests for rooms that are not ready are forwarded to $focus, and answered
 ready=true once it joins the room (ready=false while no focus resource is online).
   focus login   $focus / $focus_password   (c2s 127.0.0.1:$c2s_port; its roster already has
                 focus.localhost subscribed to its presence, as Jitsi's installer sets it up)
   test focus    /usr/bin/python3 $repo/tests/integration/focus_client.py --jid $focus/focus \\
                     --password $focus_password --port $c2s_port --join-delay 1
   or jicofo     jicofo.xmpp.client: { xmpp-domain = localhost, domain = ${focus#*@}, username = ${focus%%@*},
                 password = "$focus_password", client-proxy = focus.localhost, port = $c2s_port, use-tls = false }
======================================================================================

TXT
        fi
        wait "$pid"
        exit $?
    fi
    sleep 0.1
done
echo "run.sh: prosody not ready after 20 s; see $dir/prosody.log" >&2
kill -TERM "$pid" 2>/dev/null
exit 1
