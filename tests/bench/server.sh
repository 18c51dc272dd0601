# shellcheck shell=bash disable=SC2154  # $repo and log come from the sourcing script
# tests/bench/server.sh — sourced by run.sh and profile.sh: the bench server's ports and config.
#
#   bench_genconf WORK SERVER_DIR
# picks a free port base (BENCH_PORT_BASE to force one) and sets port_base, c2s_port and
# http_port; writes WORK/bench-extra.cfg.lua (the bench-only ceiling component of
# tests/bench/plugins/mod_bench_trivial.lua) and generates SERVER_DIR/prosody.cfg.lua with
# tests/server/genconf.sh. Needs $repo and a log function. Also defines port_free PORT.

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bench_genconf() {
    local work=$1 server_dir=$2 extra
    if [ -n "${BENCH_PORT_BASE:-}" ]; then
        port_base=$BENCH_PORT_BASE
    else
        for _ in $(seq 1 50); do
            port_base=$(( 10000 + (RANDOM % 215) * 100 ))  # below the ephemeral ports (32768-)
            port_free $((port_base + 222)) && port_free $((port_base + 280)) && break
        done
    fi
    c2s_port=$((port_base + 222)); http_port=$((port_base + 280))
    extra="$work/bench-extra.cfg.lua"
    cat >"$extra" <<'LUA'
-- bench only: the ceiling component (tests/bench/plugins/mod_bench_trivial.lua)
Component "bench.localhost" "bench_trivial"
    http_host = "localhost"
    bench_trivial_muc = "conference.localhost"
    bench_trivial_focus_jid = "focus.localhost"
LUA
    log "server: genconf $server_dir $port_base (c2s $c2s_port, HTTP $http_port)"
    # rate limits off: the bench measures throughput from one client
    CR_EXTRA_PLUGIN_PATHS="$repo/tests/bench/plugins" CR_EXTRA_CONFIG="$extra" CR_LOG_LEVEL=warn CR_RATE_LIMITS=false \
        CR_EMPTY_ROOM_TIMEOUT=3600 "$repo/tests/server/genconf.sh" "$server_dir" "$port_base" >/dev/null
}
