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
# Visitor servers: `make run CONFERENCE_REQUEST_VISITORS=2` starts the main server (run/, as above) and
# N visitor nodes v1…vN (run/v1 …, domains v1.meet.jitsi …, ports CR_PORT_BASE + 100 × i + 222/269/280),
# federated over s2s on loopback (README "Visitor servers"); Ctrl-C stops them all.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${CR_RUN_DIR:-$repo/run}  # CR_RUN_DIR: elsewhere (tests/integration/test_federation.py)
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

# ---- visitor servers: a main server and N visitor nodes, federated on loopback --------------------
run_visitors() {
    local n=$1 i id base nodes="" s2sout_main="" pids=() names=() dirs=()
    local s2s_main=$((port_base + 269))
    for p in "$s2s_main"; do
        if port_open "$p"; then echo "run.sh: port $p on 127.0.0.1 is in use; try CR_PORT_BASE=16000" >&2; exit 1; fi
    done
    for ((i = 1; i <= n; i++)); do
        id="v$i"; base=$((port_base + 100 * i))
        for p in $((base + 222)) $((base + 269)) $((base + 280)); do
            if port_open "$p"; then echo "run.sh: port $p on 127.0.0.1 is in use; try CR_PORT_BASE=16000" >&2; exit 1; fi
        done
        nodes="$nodes
            { id = \"$id\", focus_jid = \"focus@focus.$id.meet.jitsi\", muc = \"conference.$id.meet.jitsi\" };"
        s2sout_main="$s2sout_main [\"$id.meet.jitsi\"] = \"127.0.0.1:$((base + 269))\";"
    done
    mkdir -p "$dir"
    cat >"$dir/visitors.cfg.lua" <<LUA
    -- make run CONFERENCE_REQUEST_VISITORS=$n (README "Visitor servers")
    conference_request_visitors = {
        enabled = true;
        max_participants = 2;   -- a third participant of a main room is sent to a visitor node
        nodes = {$nodes
        };
    }
LUA
    rm -f "$dir/data/prosody.pid"
    CR_FOCUS="" CR_LOG_CONSOLE=0 CR_AUTH="$auth" CR_JWT_SECRET="$jwt_secret" CR_S2S=1 \
        CR_S2SOUT="{$s2sout_main }" CR_EXTRA_CONFIG="$dir/visitors.cfg.lua" \
        "$repo/tests/server/genconf.sh" "$dir" "$port_base" >/dev/null
    dirs+=("$dir"); names+=("main")
    for ((i = 1; i <= n; i++)); do
        id="v$i"; base=$((port_base + 100 * i))
        mkdir -p "$dir/$id"
        cat >"$dir/$id/node.cfg.lua" <<LUA
    -- visitor node $id of make run (README "Visitor servers")
    conference_request_role = "visitor_node"
    conference_request_main = "focus.localhost"
    conference_request_node_id = "$id"

-- a node holds many rooms: mod_muc keeps them live (its default cache is 100 rooms)
Component "conference.$id.meet.jitsi" "muc"
    muc_room_cache_size = 10000
LUA
        rm -f "$dir/$id/data/prosody.pid"
        CR_DOMAIN="$id.meet.jitsi" CR_S2S=1 CR_S2SOUT="{ [\"localhost\"] = \"127.0.0.1:$s2s_main\" }" \
            CR_EXTRA_CONFIG="$dir/$id/node.cfg.lua" CR_LOG_CONSOLE=0 \
            "$repo/tests/server/genconf.sh" "$dir/$id" "$base" >/dev/null
        dirs+=("$dir/$id"); names+=("$id")
    done
    local k
    for k in "${!dirs[@]}"; do
        prosody -F --config "${dirs[$k]}/prosody.cfg.lua" >"${dirs[$k]}/console.log" 2>&1 &
        pids+=($!)
    done
    stop_all() {  # SIGTERM (Ctrl-C has sent them SIGINT already), SIGKILL what still runs after 10 s
        local left
        kill -TERM "${pids[@]}" 2>/dev/null
        for _ in $(seq 1 100); do
            left=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
            [ "$left" = 0 ] && break
            sleep 0.1
        done
        [ "$left" = 0 ] || kill -KILL "${pids[@]}" 2>/dev/null
        wait "${pids[@]}" 2>/dev/null
    }
    trap 'stop_all; exit 0' INT TERM
    local ready=0 http c2s
    for _ in $(seq 1 200); do
        ready=0
        for k in "${!dirs[@]}"; do
            kill -0 "${pids[$k]}" 2>/dev/null || { echo "run.sh: prosody ${names[$k]} exited; see ${dirs[$k]}/prosody.log" >&2; stop_all; exit 1; }
            http=$(sed -nE 's/^http_ports = \{ ([0-9]+) \}.*/\1/p' "${dirs[$k]}/prosody.cfg.lua")
            c2s=$(sed -nE 's/^c2s_ports = \{ ([0-9]+) \}.*/\1/p' "${dirs[$k]}/prosody.cfg.lua")
            if curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$http/conference-request/v1/health" 2>/dev/null && port_open "$c2s"; then
                ready=$((ready + 1))
            fi
        done
        [ "$ready" = "${#dirs[@]}" ] && break
        sleep 0.1
    done
    if [ "$ready" != "${#dirs[@]}" ]; then
        echo "run.sh: not every server was ready after 20 s; see $dir/prosody.log and $dir/v*/prosody.log" >&2
        stop_all; exit 1
    fi
    local base_url="http://localhost:$http_port"
    cat <<TXT

======================================================================================
 mod_conference_request: a main server and $n visitor node(s), federated over s2s on loopback
 main        Prosody pid ${pids[0]}, config $dir/prosody.cfg.lua, domain localhost
             c2s 127.0.0.1:$c2s_port  HTTP $base_url  s2s 127.0.0.1:$s2s_main
TXT
    for ((i = 1; i <= n; i++)); do
        base=$((port_base + 100 * i))
        cat <<TXT
 v$i          Prosody pid ${pids[$i]}, config $dir/v$i/prosody.cfg.lua, domain v$i.meet.jitsi
             c2s 127.0.0.1:$((base + 222)) (alice@v$i.meet.jitsi / secret)  HTTP http://127.0.0.1:$((base + 280))  s2s 127.0.0.1:$((base + 269))
             module focus.v$i.meet.jitsi (role visitor_node), MUC conference.v$i.meet.jitsi
TXT
    done
    cat <<TXT

 A visitor asks the main server (visitor=true: sent to a node at once; without it, the third
 participant of a main room is), and gets vnode, vnodeMuc and the node's focusJid:
   curl -sS -H 'Content-Type: application/json' -d '{"room":"demo@conference.localhost","properties":{"visitors-version":"1","visitor":"true"}}' $base_url/conference-request/v1
 Then, on that node (v1 here), the same request for the node's room, and a join of it:
   curl -sS -H 'Content-Type: application/json' -d '{"room":"demo@conference.v1.meet.jitsi"}' http://127.0.0.1:$((port_base + 100 + 280))/conference-request/v1
   XMPP: log in as alice@v1.meet.jitsi on 127.0.0.1:$((port_base + 100 + 222)), send
   <iq type='set' to='focus.v1.meet.jitsi' id='1'><conference xmlns='http://jitsi.org/protocol/focus' room='demo@conference.v1.meet.jitsi'/></iq>
   and join demo@conference.v1.meet.jitsi: the node reports its visitors to the main server.
 Node loads and health, as the main server sees them (reports every 10 s, changes sooner):
   prosodyctl --config $dir/prosody.cfg.lua shell 'conference_request:nodes()'
   curl -sS $base_url/conference-request/v1/health
   prosodyctl --config $dir/prosody.cfg.lua shell 's2s:show()'
 logs        $dir/prosody.log, $dir/v1/prosody.log …      stop: Ctrl-C (stops all $((n + 1)))
======================================================================================

TXT
    # until Ctrl-C, or until one of them exits
    while :; do
        for k in "${!pids[@]}"; do
            if ! kill -0 "${pids[$k]}" 2>/dev/null; then
                echo "run.sh: prosody ${names[$k]} exited; stopping the others (see ${dirs[$k]}/prosody.log)" >&2
                stop_all; exit 1
            fi
        done
        sleep 1
    done
}

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

visitors=${CONFERENCE_REQUEST_VISITORS:-${CR_VISITORS:-0}}
case $visitors in
    ([0-9]) ;;
    (*) echo "run.sh: CONFERENCE_REQUEST_VISITORS must be a number of visitor nodes, 0 to 9" >&2; exit 2 ;;
esac
if [ "$visitors" -gt 0 ]; then
    [ -z "$focus" ] || { echo "run.sh: CONFERENCE_REQUEST_VISITORS goes with the built-in focus (no CONFERENCE_REQUEST_FOCUS)" >&2; exit 2; }
    run_visitors "$visitors"
    exit $?
fi

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
