#!/usr/bin/env bash
# A real one-node Slurm on this machine, to run `cargo xtask sweep --executor slurm`
# against (and its opt-in test, WAE_SLURM_TESTS=1). See docs/sweeps.md.
#
#   scripts/slurm-local.sh start    install slurm-wlm + munge if missing (apt-get, as root),
#                                   write a one-node slurm.conf, start munged, slurmctld
#                                   and slurmd, wait until the node is idle
#   scripts/slurm-local.sh status   sinfo / squeue, and where the config and logs are
#   scripts/slurm-local.sh stop     stop the three daemons started here
#
# No systemd and no cgroups are needed (proctrack/linuxproc, task/none): it runs in a
# container. State, logs and pid files live in $WAE_SLURM_DIR (default /tmp/wae-slurm).
# Clients find the config through /etc/slurm/slurm.conf (a link to ours, made only where
# no other slurm.conf is there) or through SLURM_CONF, which `status` prints.
set -euo pipefail

STATE="${WAE_SLURM_DIR:-/tmp/wae-slurm}"
CONF="$STATE/slurm.conf"
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF="$CONF"

say() { echo "slurm-local: $*" >&2; }
die() { say "$*"; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons as root)"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return
    fi
    say "installing slurm-wlm and munge with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    # Leave 1 GiB (or a quarter, on a small machine) to everything else.
    mem_mb="$(free -m | awk '/^Mem:/ {print $2}')"
    if [ "$mem_mb" -gt 4096 ]; then mem_mb=$((mem_mb - 1024)); else mem_mb=$((mem_mb * 3 / 4)); fi
    mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log"
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm-local.sh for this machine: one node, no accounting.
ClusterName=wae-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# No systemd and no cgroup hierarchy we may write to (a container).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Requeued jobs (scontrol requeue, preemption) start again without a hold.
JobRequeue=1
KillWait=30
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    mkdir -p /etc/slurm
    if [ ! -e "$ETC_CONF" ] || [ "$(readlink "$ETC_CONF" || true)" = "$CONF" ]; then
        ln -sfn "$CONF" "$ETC_CONF"
    else
        say "$ETC_CONF belongs to another Slurm: left alone; use export SLURM_CONF=$CONF"
    fi
}

running() { # pidfile
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_munge() {
    if [ -S /run/munge/munge.socket.2 ] && munge -n >/dev/null 2>&1; then
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating the munge key"
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- munged
    for _ in $(seq 50); do
        munge -n >/dev/null 2>&1 && return
        sleep 0.2
    done
    die "munged did not answer (see /var/log/munge/munged.log)"
}

start() {
    need_root
    install_packages
    write_conf
    start_munge
    if ! running "$STATE/slurmctld.pid"; then
        slurmctld -D -i >>"$STATE/log/slurmctld.out" 2>&1 &
        echo $! >"$STATE/slurmctld.pid"
    fi
    for _ in $(seq 50); do
        scontrol ping 2>/dev/null | grep -q UP && break
        sleep 0.2
    done
    scontrol ping | grep -q UP || die "slurmctld is not up: see $STATE/log/slurmctld.log and slurmctld.out"
    if ! running "$STATE/slurmd.pid"; then
        slurmd -D >>"$STATE/log/slurmd.out" 2>&1 &
        echo $! >"$STATE/slurmd.pid"
    fi
    local host
    host="$(hostname -s)"
    for _ in $(seq 60); do
        state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
        case "$state" in
        idle | mix | alloc) say "node $host is $state; config $CONF"; sinfo; return ;;
        down* | drain*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die "node $host did not become idle (state '$state'): see $STATE/log/slurmd.log"
}

stop() {
    local what pidfile pid
    for what in slurmd slurmctld; do
        pidfile="$STATE/$what.pid"
        if running "$pidfile"; then
            pid="$(cat "$pidfile")"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            say "stopped $what ($pid)"
        fi
        rm -f "$pidfile"
    done
    if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        kill "$(cat /run/munge/munged.pid)"
        say "stopped munged"
    fi
}

status() {
    for what in slurmctld slurmd; do
        if running "$STATE/$what.pid"; then
            say "$what running (pid $(cat "$STATE/$what.pid"))"
        else
            say "$what not running"
        fi
    done
    say "config: $CONF (clients: export SLURM_CONF=$CONF); logs: $STATE/log/"
    sinfo 2>/dev/null && squeue 2>/dev/null || true
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
