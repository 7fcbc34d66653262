#!/bin/busybox sh
# /init of the v9fs acceptance guest (packed by tests/v9fs/run.sh, which
# fills in the @...@ fields). Prints one `V9FS-CHECK <name> PASS|FAIL <detail>`
# line per check, then `V9FS-DONE`, then powers off. Every command that
# touches the 9P mount runs under `timeout`.

/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

HOST=@HOST@
PORT=@PORT@
OPTS="trans=tcp,port=$PORT,version=9p2000.L,msize=@MSIZE@"
ACCESS="@ACCESS@"   # empty: the kernel's default access mode
[ -n "$ACCESS" ] && OPTS="$OPTS,access=$ACCESS"
QUEEN_TICKET=@QUEEN_TICKET@
WORKER_TICKET=@WORKER_TICKET@
T=15   # seconds any single 9P-touching command may take

pass() { echo "V9FS-CHECK $1 PASS $2"; }
fail() { echo "V9FS-CHECK $1 FAIL $2"; }
# Flattens output into one short line for a check's detail.
flat() { tr '\n' ' ' | tr -s ' ' | cut -c1-200; }
finish() {
    echo "V9FS-DONE"
    sync
    poweroff -f
    sleep 5
}
# has WORD LIST: is WORD one of the whitespace-separated LIST?
# (Its loop variable has a name no caller uses: ash has no POSIX `local`.)
has() {
    for has_item in $2; do [ "$has_item" = "$1" ] && return 0; done
    return 1
}
# denied TEXT: does an error message carry EACCES or EPERM?
denied() {
    case "$1" in
        *"Permission denied"* | *"Operation not permitted"*) return 0 ;;
    esac
    return 1
}

echo "V9FS-INFO kernel $(uname -r)"

# ---- modules, in dependency order (host resolved it from .modinfo) ----
loaded=""
while read -r m; do
    if ! out=$(insmod "/lib/modules/$m.ko" 2>&1); then
        fail modules "insmod $m: $(echo "$out" | flat)"
        finish
    fi
    loaded="$loaded $m"
done </lib/modules/load-order
pass modules "loaded:$loaded"

# ---- network: static address on QEMU user-net ----
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
if ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0; then
    pass net "eth0 10.0.2.15/24"
else
    fail net "eth0 did not come up"
    finish
fi

# ---- queen mount ----
if out=$(timeout $T mount -t 9p -o "$OPTS,uname=queen,aname=$QUEEN_TICKET" "$HOST" /mnt/q 2>&1); then
    pass mount-queen "$HOST:$PORT $OPTS"
else
    fail mount-queen "$(echo "$out" | flat)"
    finish
fi

out=$(timeout $T ls /mnt/q 2>&1)
ok=1
for want in proc queen shard worker log; do has "$want" "$out" || ok=0; done
if [ $ok = 1 ]; then pass ls-root "$(echo "$out" | flat)"; else fail ls-root "$(echo "$out" | flat)"; fi

out=$(timeout $T ls /mnt/q/proc 2>&1)
if has boot "$out" && has lifecycle "$out"; then
    pass ls-proc "$(echo "$out" | flat)"
else
    fail ls-proc "$(echo "$out" | flat)"
fi

workers_before=$(timeout $T ls /mnt/q/worker 2>&1)
if has worker-1 "$workers_before"; then
    pass ls-worker "$(echo "$workers_before" | flat)"
else
    fail ls-worker "$(echo "$workers_before" | flat)"
fi

out=$(timeout $T stat -c '%F %a %s' /mnt/q/queen/ctl 2>&1)
case "$out" in
    "regular"*) pass stat-ctl "$out" ;;
    *) fail stat-ctl "$(echo "$out" | flat)" ;;
esac

out=$(timeout $T cat /mnt/q/proc/boot 2>&1)
case "$out" in
    *"schema=cohesix-manifest/v1"*) pass cat-boot "$(echo "$out" | head -n 2 | flat)" ;;
    *) fail cat-boot "$(echo "$out" | flat)" ;;
esac

out=$(timeout $T cat /mnt/q/worker/worker-1/telemetry 2>&1)
case "$out" in
    *'"tick"'*) pass queen-telemetry "$(echo "$out" | tail -n 1 | flat)" ;;
    *) fail queen-telemetry "$(echo "$out" | flat)" ;;
esac

# A fresh open sees fresh records (cache=none: no client caching).
last_tick() { timeout $T cat "$1" 2>/dev/null | grep -o '"tick":[0-9]*' | tail -n 1 | cut -d: -f2; }
t1=$(last_tick /mnt/q/worker/worker-1/telemetry)
sleep 2.5
t2=$(last_tick /mnt/q/worker/worker-1/telemetry)
if [ -n "$t1" ] && [ -n "$t2" ] && [ "$t2" -gt "$t1" ]; then
    pass telemetry-advances "tick $t1 -> $t2"
else
    fail telemetry-advances "tick '$t1' -> '$t2'"
fi

if out=$( (timeout $T sh -c 'echo "{\"spawn\":\"heartbeat\",\"ticks\":5}" >> /mnt/q/queen/ctl') 2>&1); then
    pass spawn "appended to /queen/ctl"
    workers_after=$(timeout $T ls /mnt/q/worker 2>&1)
    new=""
    for id in $workers_after; do has "$id" "$workers_before" || new="$new $id"; done
    if [ -n "$new" ]; then
        pass spawn-listed "new:$new"
    else
        fail spawn-listed "before: $(echo "$workers_before" | flat) after: $(echo "$workers_after" | flat)"
    fi
else
    fail spawn "$(echo "$out" | flat)"
    fail spawn-listed "no spawn"
fi

# `>` truncates first (Tsetattr size=0), which append-only files accept.
if out=$( (timeout $T sh -c 'echo "{\"spawn\":\"heartbeat\",\"ticks\":5}" > /mnt/q/queen/ctl') 2>&1); then
    pass spawn-truncating-redirect "echo > /queen/ctl accepted"
else
    fail spawn-truncating-redirect "$(echo "$out" | flat)"
fi

# ---- worker mount (worker-heartbeat, subject worker-1) ----
if out=$(timeout $T mount -t 9p -o "$OPTS,uname=worker-heartbeat,aname=$WORKER_TICKET" "$HOST" /mnt/w 2>&1); then
    pass mount-worker "uname=worker-heartbeat"
    out=$(timeout $T cat /mnt/w/worker/worker-1/telemetry 2>&1)
    case "$out" in
        *'"tick"'*) pass worker-telemetry "$(echo "$out" | tail -n 1 | flat)" ;;
        *) fail worker-telemetry "$(echo "$out" | flat)" ;;
    esac

    if out=$( (timeout $T sh -c 'echo "{\"note\":\"v9fs\"}" >> /mnt/w/worker/worker-1/telemetry') 2>&1); then
        pass worker-append-own "appended to own telemetry"
    else
        fail worker-append-own "$(echo "$out" | flat)"
    fi

    out=$(timeout $T cat /mnt/w/proc/boot 2>&1)
    case "$out" in
        *"schema=cohesix-manifest/v1"*) pass worker-boot "readable" ;;
        *) fail worker-boot "$(echo "$out" | flat)" ;;
    esac

    if out=$( (timeout $T sh -c 'echo x >> /mnt/w/queen/ctl') 2>&1); then
        fail worker-ctl-denied "append to /queen/ctl succeeded"
    elif denied "$out"; then
        pass worker-ctl-denied "$(echo "$out" | flat)"
    else
        fail worker-ctl-denied "wrong error: $(echo "$out" | flat)"
    fi

    # A worker walks to its own files but may not list the tree above them;
    # the refusal must reach ls (at open), not vanish into an empty listing.
    if out=$(timeout $T ls /mnt/w 2>&1); then
        fail worker-ls-denied "ls / succeeded: '$(echo "$out" | flat)'"
    elif denied "$out"; then
        pass worker-ls-denied "$(echo "$out" | flat)"
    else
        fail worker-ls-denied "wrong error: $(echo "$out" | flat)"
    fi

    if out=$(timeout $T cat /mnt/w/worker/worker-2/telemetry 2>&1); then
        fail worker-other-denied "read worker-2 telemetry: $(echo "$out" | tail -n 1 | flat)"
    else
        pass worker-other-denied "$(echo "$out" | flat)"
    fi

    if out=$(timeout $T umount /mnt/w 2>&1); then pass umount-worker ""; else fail umount-worker "$(echo "$out" | flat)"; fi
else
    fail mount-worker "$(echo "$out" | flat)"
fi

if out=$(timeout $T umount /mnt/q 2>&1); then pass umount-queen ""; else fail umount-queen "$(echo "$out" | flat)"; fi

finish
