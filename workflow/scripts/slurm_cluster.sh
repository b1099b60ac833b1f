#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the `slurm` tests (tests/test_slurm.py) and
# for trying profiles/slurm before a real cluster. Needs root and Debian's slurm-wlm + munge
# (workflow/scripts/setup_test_services.sh installs them).
#
#   bash workflow/scripts/slurm_cluster.sh start    write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   bash workflow/scripts/slurm_cluster.sh stop     stop the daemons, remove what start wrote
#   bash workflow/scripts/slurm_cluster.sh status   sinfo
#
# The node: 16 CPUs, 128 GB and 2 GPUs, whatever the machine has (SlurmdParameters=config_overrides),
# so that the profile's real requests (8 CPUs, 64 GB, 1 GPU per training) are accepted as they are;
# partitions `cpu` (default) and `gpu`. The GPUs are device nodes that only SLURM's bookkeeping
# sees: a job asking for one gets CUDA_VISIBLE_DEVICES set as on a real GPU node. No accounting
# (no slurmdbd): jobs are queried with squeue, finished ones stay visible for MinJobAge = 3600 s
# (the tests read every job of a run with scontrol after the run, which takes up to ~8 min on 2 busy cores).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARK="# written by mienet workflow/scripts/slurm_cluster.sh"
RUN=/run/slurm
GPUS=2

say() { printf '[slurm] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    for _ in $(seq $((limit * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$what did not come up within ${limit}s (logs: /var/log/slurm/, /var/log/munge/)"
}

start() {
    [ "$(id -u)" = 0 ] || die "needs root (it writes $CONF and starts daemons)"
    for bin in munged slurmctld slurmd sbatch; do
        command -v "$bin" >/dev/null || die "$bin not found: apt-get install slurm-wlm munge (setup_test_services.sh does)"
    done
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching a real cluster's configuration"
    fi
    if scontrol ping 2>/dev/null | grep -q UP && sinfo -h -N -o %T 2>/dev/null | grep -q idle; then
        say "already running"; return 0
    fi
    local host; host="$(hostname -s)"
    mkdir -p "$CONF_DIR" "$RUN/fakegpu" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /var/log/munge /run/munge
    for ((i = 0; i < GPUS; i++)); do
        [ -e "$RUN/fakegpu/gpu$i" ] || mknod "$RUN/fakegpu/gpu$i" c 1 3
    done
    cat > "$CONF" <<EOF
$MARK
ClusterName=mienet
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
DefMemPerCPU=1000
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 Sockets=1 CoresPerSocket=16 ThreadsPerCore=1 RealMemory=131072 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    echo "$MARK" > "$CONF_DIR/gres.conf"
    echo "Name=gpu File=$RUN/fakegpu/gpu[0-$((GPUS - 1))]" >> "$CONF_DIR/gres.conf"
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown -R munge:munge /etc/munge /var/log/munge /run/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    chmod 755 /run/munge
    if ! (munge -n | unmunge) >/dev/null 2>&1; then
        if id munge >/dev/null 2>&1; then
            runuser -u munge -- munged
        else
            munged --force
        fi
        wait_for 10 munged sh -c 'munge -n | unmunge'
        touch "$RUN/munged.ours"  # stop ends it too
    fi
    slurmctld -i
    wait_for 20 slurmctld sh -c 'scontrol ping | grep -q UP'
    slurmd
    wait_for 30 "slurmd (node idle)" sh -c 'sinfo -h -N -o %T | grep -qx idle'
    say "up: $(sinfo -h -o '%P %D %c CPUs %m MB %G %a' | tr '\n' ';')"
}

stop() {
    for pidfile in "$RUN/slurmd.pid" "$RUN/slurmctld.pid"; do
        if [ -f "$pidfile" ]; then
            local pid; pid="$(cat "$pidfile")"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$pidfile"
        fi
    done
    if [ -f "$RUN/munged.ours" ] && [ -f /run/munge/munged.pid ]; then
        kill -TERM "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f "$RUN/munged.ours"
    fi
    if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then
        rm -f "$CONF" "$CONF_DIR/gres.conf"
        rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*  # no job state survives into the next start
    fi
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
