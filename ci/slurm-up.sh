#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (as root): munge, slurmctld, slurmd.
# Used by .ci/run before the sweep tests; a user can run it to reproduce them.
#   ci/slurm-up.sh            install (if needed) and start; exits 0 once `sinfo` shows the node idle
#   ci/slurm-up.sh --down     stop the daemons
# Exits 3 (and prints why) when Slurm cannot be started here (not root, no apt, no network).
set -uo pipefail

say() { echo "slurm-up: $*" >&2; }

if [[ "${1:-}" == "--down" ]]; then
  pkill -x slurmd 2>/dev/null; pkill -x slurmctld 2>/dev/null; pkill -x munged 2>/dev/null
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then say "not root: cannot start Slurm"; exit 3; fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if ! command -v apt-get >/dev/null; then say "no slurmctld/munged and no apt-get"; exit 3; fi
  say "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq slurm-wlm munge) >/tmp/slurm-up-apt.log 2>&1 \
    || { say "apt-get install failed (see /tmp/slurm-up-apt.log)"; exit 3; }
fi

host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {printf "%d", $2/1024*0.9}' /proc/meminfo)"

# munge: a key, and its directories owned by the munge user.
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force \
    || { say "munged did not start"; exit 3; }
fi

conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$conf_dir/slurm.conf" <<CONF
# single-node cluster written by ci/slurm-up.sh
ClusterName=mcopt-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxArraySize=100001
MaxJobCount=200000
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# Slurm 22.05 has no "disabled" cgroup plugin: leave cgroup.conf out (autodetect), since
# proctrack/linuxproc and task/none never use it.
rm -f "$conf_dir/cgroup.conf"

# Fresh daemons every time (a stale or half-dead one from an earlier run would hang the node).
pkill -x slurmd 2>/dev/null; pkill -x slurmctld 2>/dev/null; sleep 1
/usr/sbin/slurmctld -c || { say "slurmctld did not start"; exit 3; }
/usr/sbin/slurmd || { say "slurmd did not start"; exit 3; }

for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1)"
  case "$state" in
    idle|mixed|allocated) say "node $host is $state"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 ;;
  esac
  sleep 1
done
say "the node did not become idle (state: ${state:-unknown}); see /var/log/slurm/"
exit 3
