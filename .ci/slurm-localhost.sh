#!/bin/bash
# A single-node Slurm cluster on this machine, for the Slurm sweep test (crates/seqls-cli/tests/slurm.rs).
#
#   .ci/slurm-localhost.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld and slurmd
#   .ci/slurm-localhost.sh stop DIR    # stops slurmd and slurmctld started with DIR
#
# Needs root (slurmd runs as root) and Debian's slurmd, slurmctld, slurm-client and munge packages.
# Client commands use the cluster with SLURM_CONF=DIR/slurm.conf. One node named after this host, with
# every core and 90% of the memory; one partition `debug`; jobs may be requeued; ports of its own.
set -euo pipefail
cmd=${1:?usage: $0 start|stop DIR}
dir=$(realpath -m "${2:?usage: $0 start|stop DIR}")
export SLURM_CONF=$dir/slurm.conf

stop() {
    for d in slurmd slurmctld; do
        if [ -f "$dir/$d.pid" ]; then
            kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
        fi
    done
    sleep 1
}

case "$cmd" in
start)
    mkdir -p "$dir/state" "$dir/spool"
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    # Ports of their own, so that this cluster never talks to another one on the machine.
    port=$((20000 + RANDOM % 20000))
    cat > "$SLURM_CONF" <<CONF
ClusterName=seqls-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobRequeue=1
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    if ! munge -n >/dev/null 2>&1; then
        mkdir -p /run/munge
        chown munge:munge /run/munge
        [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
        su -s /bin/sh munge -c /usr/sbin/munged
    fi
    stop
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            exit 0
        fi
        sleep 1
    done
    echo "slurm did not come up; logs in $dir" >&2
    tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
    ;;
stop)
    stop
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
