# Sourced by the checks that run against a whole local network: `start_up PLEXUS WORK` starts
# `plexus up` with its files under WORK (stopped, and WORK removed, when the script exits) and
# returns once WORK/up/network.json is written.
start_up() {
    local plexus=$1 work=$2
    PLEXUS_HOME="$work/home" "$plexus" up --dir "$work/up" --port 0 > "$work/up.out" 2>&1 &
    up_pid=$!
    trap 'kill $up_pid 2>/dev/null || true; wait $up_pid 2>/dev/null || true; rm -rf "'"$work"'"' EXIT
    for _ in $(seq 1 600); do
        [ -s "$work/up/network.json" ] && return 0
        kill -0 $up_pid 2>/dev/null || { cat "$work/up.out"; exit 1; }
        sleep 0.5
    done
    echo "plexus up did not start"
    cat "$work/up.out"
    exit 1
}
