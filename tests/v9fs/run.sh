#!/usr/bin/env bash
# Acceptance test: the Linux kernel's own 9P client (v9fs) mounts a hive.
#
# Builds `cohesix`, starts a hive on 127.0.0.1 (ephemeral port), mints a
# worker ticket, boots a Debian kernel under QEMU (TCG) with a busybox
# initramfs whose /init mounts the hive over 9P2000.L/TCP and runs the
# checks, then prints the guest's `V9FS-CHECK` lines. Exit 0 only if every
# check passed and the guest reached `V9FS-DONE`.
#
# Environment:
#   V9FS_KERNEL_PKG   kernel package to use (default: what linux-image-amd64
#                     depends on, else the newest generic -amd64 image)
#   V9FS_TIMEOUT      seconds QEMU may run (default 120)
#   V9FS_KEEP         1: keep the work dir (serial log, hive log, initramfs)
#   V9FS_HIVE_LOG     COHESIX_LOG filter for the hive (default info)
#   V9FS_ACCESS       v9fs access= option (default: none, the kernel's default)
#   V9FS_INIT         guest /init template (default tests/v9fs/init.sh)
#   CARGO             cargo binary (default cargo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache_root="$root/target/v9fs-cache"
qemu_timeout="${V9FS_TIMEOUT:-120}"
access="${V9FS_ACCESS-}"
msize=8192
guest_host=10.0.2.100

log() { printf 'v9fs: %s\n' "$*" >&2; }
die() { printf 'v9fs: error: %s\n' "$*" >&2; exit 2; }

for tool in qemu-system-x86_64 cpio gzip xz flock timeout apt-get apt-cache dpkg; do
    command -v "$tool" >/dev/null 2>&1 || die "missing $tool (run tests/v9fs/install-deps.sh)"
done
busybox_bin=""
for b in /bin/busybox /usr/bin/busybox; do
    # Must be static: the initramfs carries no libc.
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
        busybox_bin="$b"
        break
    fi
done
[ -n "$busybox_bin" ] || die "no static busybox found (install busybox-static)"

work="$(mktemp -d "${TMPDIR:-/tmp}/v9fs.XXXXXX")"
hive_pid=""
cleanup() {
    local rc=$?
    if [ -n "$hive_pid" ] && kill -0 "$hive_pid" 2>/dev/null; then
        kill -TERM "$hive_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$hive_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$hive_pid" 2>/dev/null || true
        wait "$hive_pid" 2>/dev/null || true
    fi
    if [ "${V9FS_KEEP:-0}" = 1 ]; then
        log "work dir kept: $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build --
t_start=$SECONDS
log "building cohesix (debug)"
(cd "$root" && timeout 1800 "${CARGO:-cargo}" build -q -p cohesix) || die "cargo build -p cohesix failed"
# cargo honours CARGO_TARGET_DIR (relative to $root, where it ran).
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
cohesix="$target_dir/debug/cohesix"
[ -x "$cohesix" ] || die "no $cohesix after build"

# --------------------------------------------------------------- kernel --
resolve_kernel_pkg() {
    if [ -n "${V9FS_KERNEL_PKG:-}" ]; then
        echo "$V9FS_KERNEL_PKG"
        return
    fi
    local pkg
    pkg="$(apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')"
    if [ -z "$pkg" ]; then
        pkg="$(apt-cache search --names-only '^linux-image-[0-9].*-amd64$' 2>/dev/null \
            | awk '{ print $1 }' | grep -Ev -- '-(cloud|rt)-amd64$|-dbg$|-unsigned$' \
            | sort -V | tail -n 1)"
    fi
    if [ -z "$pkg" ]; then
        # Offline or no package lists: fall back to the newest cached kernel.
        local cached
        cached="$(find "$cache_root" -mindepth 2 -maxdepth 2 -name ready -printf '%h\n' 2>/dev/null \
            | sed 's|.*/||' | sort -V | tail -n 1)"
        [ -n "$cached" ] && pkg="linux-image-$cached"
    fi
    echo "$pkg"
}

# Module name as the kernel compares it: '-' and '_' are the same.
modkey() { local n="${1##*/}"; n="${n%%.ko*}"; echo "${n//-/_}"; }

# Unpacks the kernel package once and keeps only vmlinuz and the modules
# v9fs over TCP and the e1000 NIC need, decompressed, plus their load order.
prepare_kernel() {
    local pkg="$1" kver="$2" dir="$3"
    local tmp="$dir.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp/dl" "$tmp/x" "$tmp/modules"
    log "fetching $pkg (first run only)"
    (cd "$tmp/dl" && timeout 600 apt-get download -q "$pkg" >/dev/null 2>&1) \
        || (cd "$tmp/dl" && timeout 600 apt-get download "$pkg") \
        || die "apt-get download $pkg failed (run tests/v9fs/install-deps.sh for package lists)"
    local deb
    deb="$(find "$tmp/dl" -name '*.deb' | head -n 1)"
    [ -n "$deb" ] || die "no .deb downloaded for $pkg"
    timeout 600 dpkg -x "$deb" "$tmp/x"
    local vmlinuz="$tmp/x/boot/vmlinuz-$kver"
    [ -f "$vmlinuz" ] || die "$pkg has no boot/vmlinuz-$kver"
    local mdir="$tmp/x/lib/modules/$kver"
    [ -d "$mdir" ] || mdir="$tmp/x/usr/lib/modules/$kver"
    [ -d "$mdir" ] || die "$pkg has no lib/modules/$kver"

    declare -A path_of=() builtin=() seen=()
    local f
    while IFS= read -r f; do
        path_of["$(modkey "$f")"]="$f"
    done < <(find "$mdir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
    if [ -f "$mdir/modules.builtin" ]; then
        while IFS= read -r f; do
            builtin["$(modkey "$f")"]=1
        done <"$mdir/modules.builtin"
    fi

    local order=()
    # Depth-first, dependencies before dependents. Depth is bounded by the
    # module graph (and by bash's function nesting limit).
    visit() {
        local key; key="$(modkey "$1")"
        [ -z "${seen[$key]:-}" ] || return 0
        seen[$key]=1
        if [ -n "${builtin[$key]:-}" ]; then
            log "module $key: built in"
            return 0
        fi
        local src="${path_of[$key]:-}"
        [ -n "$src" ] || die "module $key neither shipped nor built in by $pkg"
        local out="$tmp/modules/$key.ko"
        case "$src" in
            *.ko.xz) xz -dc "$src" >"$out" ;;
            *.ko.zst) command -v zstd >/dev/null || die "need zstd for $src"; zstd -qdc "$src" >"$out" ;;
            *.ko.gz) gzip -dc "$src" >"$out" ;;
            *) cp "$src" "$out" ;;
        esac
        local deps d
        deps="$(tr '\0' '\n' <"$out" | grep -a -m1 '^depends=' | cut -d= -f2- || true)"
        for d in ${deps//,/ }; do
            visit "$d"
        done
        order+=("$key")
    }
    local m
    for m in e1000 9pnet_fd 9p; do
        visit "$m"
    done
    cp "$vmlinuz" "$tmp/vmlinuz"
    printf '%s\n' "${order[@]}" >"$tmp/load-order"
    rm -rf "$tmp/dl" "$tmp/x"
    touch "$tmp/ready"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    log "kernel $kver cached in ${dir#"$root"/} (modules: ${order[*]})"
}

pkg="$(resolve_kernel_pkg)"
[ -n "$pkg" ] || die "cannot resolve a linux-image-*-amd64 package (run tests/v9fs/install-deps.sh)"
kver="${pkg#linux-image-}"
kdir="$cache_root/$kver"
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
timeout 900 flock 9 || die "timed out waiting for the kernel cache lock"
if [ ! -f "$kdir/ready" ]; then
    prepare_kernel "$pkg" "$kver" "$kdir"
else
    log "kernel $kver from cache"
fi
flock -u 9
exec 9>&-

# ----------------------------------------------------------------- hive --
data="$work/data"
mkdir -p "$data"
log "starting hive"
COHESIX_LOG="${V9FS_HIVE_LOG:-info}" "$cohesix" up --data-dir "$data" \
    --ninep-listen 127.0.0.1:0 --console-listen "" --workers 2 \
    >"$work/hive.out" 2>"$work/hive.err" </dev/null &
hive_pid=$!

port=""
for _ in $(seq 1 300); do
    port="$(awk '$1 == "secure9p" { n = split($2, a, ":"); print a[n]; exit }' "$work/hive.out" 2>/dev/null || true)"
    [ -n "$port" ] && [ -s "$data/queen.ticket" ] && break
    kill -0 "$hive_pid" 2>/dev/null || { cat "$work/hive.err" >&2; die "hive exited early"; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/hive.err" >&2; die "hive did not report its 9P address within 30 s"; }
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
log "hive pid $hive_pid listening on 127.0.0.1:$port"

queen_ticket="$(tr -d '[:space:]' <"$data/queen.ticket")"
worker_ticket="$("$cohesix" ticket --role worker-heartbeat --subject worker-1 --data-dir "$data" 2>>"$work/hive.err" | tr -d '[:space:]')"
if [ -z "$queen_ticket" ] || [ -z "$worker_ticket" ]; then
    die "could not obtain tickets"
fi
case "$queen_ticket$worker_ticket" in
    *[!A-Za-z0-9._-]*) die "ticket has characters unsafe for a mount option" ;;
esac

# ------------------------------------------------------------ initramfs --
ird="$work/initramfs"
mkdir -p "$ird"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt/q,mnt/w,lib/modules}
cp "$busybox_bin" "$ird/bin/busybox"
while IFS= read -r m; do
    cp "$kdir/modules/$m.ko" "$ird/lib/modules/$m.ko"
done <"$kdir/load-order"
cp "$kdir/load-order" "$ird/lib/modules/load-order"
sed -e "s|@PORT@|$port|g" -e "s|@HOST@|$guest_host|g" -e "s|@MSIZE@|$msize|g" \
    -e "s|@ACCESS@|$access|g" -e "s|@QUEEN_TICKET@|$queen_ticket|g" \
    -e "s|@WORKER_TICKET@|$worker_ticket|g" "${V9FS_INIT:-$here/init.sh}" >"$ird/init"
chmod 755 "$ird/init" "$ird/bin/busybox"
(cd "$ird" && find . -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc --quiet -R 0:0 | gzip -1 >"$work/initramfs.gz")

# ----------------------------------------------------------------- boot --
serial="$work/serial.log"
log "booting $kver under QEMU (TCG, limit ${qemu_timeout}s)"
t_boot=$SECONDS
set +e
timeout --kill-after=5 "$qemu_timeout" qemu-system-x86_64 \
    -accel tcg -m 512 -smp 1 -no-reboot \
    -display none -monitor none -serial "file:$serial" \
    -kernel "$kdir/vmlinuz" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 panic=-1 quiet" \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:$guest_host:$port-cmd:$busybox_bin nc 127.0.0.1 $port" \
    -device e1000,netdev=n0 \
    </dev/null >"$work/qemu.out" 2>&1
qrc=$?
set -e
boot_s=$((SECONDS - t_boot))

# --------------------------------------------------------------- verdict --
tr -d '\r' <"$serial" >"$work/serial.txt" 2>/dev/null || : >"$work/serial.txt"
grep -a -E '^V9FS-(CHECK|DONE|INFO)' "$work/serial.txt" || true
pass=$(grep -a -c '^V9FS-CHECK [^ ]* PASS' "$work/serial.txt" || true)
fail=$(grep -a -c '^V9FS-CHECK [^ ]* FAIL' "$work/serial.txt" || true)
done_seen=0
grep -a -q '^V9FS-DONE' "$work/serial.txt" && done_seen=1
if [ "$qrc" -ne 0 ] || [ "$done_seen" -ne 1 ] || [ "$fail" -ne 0 ] || [ "$pass" -eq 0 ]; then
    log "qemu exit $qrc after ${boot_s}s; done=$done_seen; last serial lines:"
    tail -n 40 "$work/serial.txt" >&2 || true
    [ -s "$work/qemu.out" ] && { log "qemu said:"; tail -n 20 "$work/qemu.out" >&2; }
    log "hive log tail:"
    tail -n 40 "$work/hive.err" >&2 || true
fi
echo "$pass passed, $fail failed"
log "boot ${boot_s}s, total $((SECONDS - t_start))s"
if [ "$qrc" -ne 0 ]; then
    [ "$qrc" -eq 124 ] && log "QEMU timed out after ${qemu_timeout}s"
    exit 1
fi
[ "$done_seen" -eq 1 ] && [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
