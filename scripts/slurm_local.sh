#!/usr/bin/env bash
# A real one-node SLURM cluster on 127.0.0.1, to try the cluster path (hydra/launcher=slurm) on a
# laptop or a CI machine. Debian/Ubuntu, run as root (it installs packages and starts daemons).
#
#   scripts/slurm_local.sh start      # install if missing, start munge, MariaDB, slurmdbd, slurmctld, slurmd
#   eval "$(scripts/slurm_local.sh env)"   # SLURM_CONF for sbatch / squeue / sacct / scancel
#   python -m prefexp.train -m hydra/launcher=slurm $(scripts/slurm_local.sh overrides) loss=dpo,mixdpo trainer.max_steps=3
#   scripts/slurm_local.sh status     # sinfo + squeue; exit 0 when the node takes jobs
#   scripts/slurm_local.sh stop       # stop what start started
#
# Everything lives under $PREFEXP_SLURM_DIR (default /tmp/prefexp-slurm): slurm.conf, slurmdbd.conf,
# the MariaDB data, state, spool, logs, pid files. Nothing in /etc/slurm is touched, so an existing
# SLURM set-up is left alone. The node ("prefexp-local", partition "local") has 2 CPUs
# ($PREFEXP_SLURM_CPUS) and no GPUs. Accounting (slurmdbd + MariaDB) is there because submitit
# reads job states with sacct: without it a cancelled job would look "running" forever.
# Ports (127.0.0.1 only): slurmctld 6817, slurmd 6818, slurmdbd 6819, MariaDB 3307; override
# with PREFEXP_SLURM_PORT_BASE (ctld = base, slurmd = base+1, dbd = base+2, MariaDB = base+3).
set -euo pipefail

DIR=${PREFEXP_SLURM_DIR:-/tmp/prefexp-slurm}
CPUS=${PREFEXP_SLURM_CPUS:-2}
BASE=${PREFEXP_SLURM_PORT_BASE:-6817}
# PREFEXP_SLURM_NODES=2: two nodes on this host, prefexp-local1 on 127.0.0.1 and prefexp-local2 on
# 127.0.0.2, one slurmd each (slurmd -N; ports base+11, base+12), CPUS split between them.
NODES=${PREFEXP_SLURM_NODES:-1}
NODE=prefexp-local
PARTITION=local
DB_PORT=$((BASE + 3))
export SLURM_CONF=$DIR/etc/slurm.conf
PACKAGES="slurm-wlm slurmdbd munge mariadb-server"

die() { echo "error: $*" >&2; exit 2; }
log() { echo "slurm_local: $*" >&2; }
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_if_missing() {
  local missing=0
  for bin in slurmctld slurmd slurmdbd munged mariadbd sbatch sacct; do
    command -v "$bin" >/dev/null || PATH=$PATH:/usr/sbin command -v "$bin" >/dev/null || missing=1
  done
  [[ $missing == 0 ]] && return
  [[ $(id -u) == 0 ]] || die "SLURM is not installed and this is not root; run: sudo apt-get install -y $PACKAGES"
  log "installing $PACKAGES (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES >"$DIR/log/apt.log" 2>&1 \
    || { apt-get update >>"$DIR/log/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES >>"$DIR/log/apt.log" 2>&1; } \
    || die "apt-get install $PACKAGES failed; see $DIR/log/apt.log"
}

node_names() {
  if [[ $NODES == 1 ]]; then echo $NODE; else for i in $(seq "$NODES"); do echo "$NODE$i"; done; fi
}

node_lines() {  # mem_mb
  if [[ $NODES == 1 ]]; then
    echo "NodeName=$NODE NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$1 State=UNKNOWN"
    return
  fi
  for i in $(seq "$NODES"); do
    echo "NodeName=$NODE$i NodeHostname=$(hostname) NodeAddr=127.0.0.$i Port=$((BASE + 10 + i)) CPUs=$((CPUS / NODES)) RealMemory=$(($1 / NODES)) State=UNKNOWN"
  done
}

resolvable_node_names() {  # several nodes: SLURM names node 0's host as "prefexp-local1"; resolve it here
  [[ $NODES == 1 ]] && return
  for i in $(seq "$NODES"); do
    getent hosts "$NODE$i" >/dev/null || echo "127.0.0.$i $NODE$i  # scripts/slurm_local.sh" >>/etc/hosts
  done
}

write_configs() {
  local mem_mb
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  cat >"$DIR/etc/slurm.conf" <<EOF
# Written by scripts/slurm_local.sh: one node on 127.0.0.1, no cgroups (works in containers).
ClusterName=prefexp-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$BASE
SlurmdPort=$((BASE + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((BASE + 2))
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$(node_lines "$mem_mb")
PartitionName=$PARTITION Nodes=$(node_names | paste -sd,) Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((BASE + 2))
SlurmUser=root
AuthType=auth/munge
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"
}

start_munge() {
  if echo | munge -s /run/munge/munge.socket.2 2>/dev/null | unmunge >/dev/null 2>&1; then
    return  # a munged is already serving the default socket (the system's or ours)
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
  chmod 0755 /run/munge
  [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create --keyfile /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$DIR/run/munged.pid"  # ours: stop stops it
  for _ in $(seq 50); do echo | munge 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start"
}

start_mariadb() {
  alive "$DIR/run/mariadb.pid" && return
  if [[ ! -d $DIR/mysql/mysql ]]; then
    mariadb-install-db --user=root --datadir="$DIR/mysql" --auth-root-authentication-method=socket \
      >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  mariadbd --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysqld.sock" --pid-file="$DIR/run/mariadb.pid" \
    --bind-address=127.0.0.1 --port=$DB_PORT --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=64M \
    >/dev/null 2>&1 &
  for _ in $(seq 150); do
    mariadb -S "$DIR/run/mysqld.sock" -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2
  done
  mariadb -S "$DIR/run/mysqld.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
    || die "MariaDB did not start; see $DIR/log/mariadb.log"
}

start_daemon() {  # name, pid file, command...
  local name=$1 pid=$2; shift 2
  alive "$pid" && return
  "$@" || die "$name did not start; see $DIR/log/$name.log"
  for _ in $(seq 100); do alive "$pid" && return; sleep 0.1; done
  die "$name did not start; see $DIR/log/$name.log"
}

wait_for_node() {  # name
  for _ in $(seq 300); do
    local state
    state=$(sinfo -h -n "$1" -o %T 2>/dev/null || true)
    case $state in
      idle*|mixed*|allocated*) return ;;
      down*|drain*) scontrol update nodename="$1" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  die "node $1 did not come up (sinfo: ${state:-no answer}); see $DIR/log/slurmctld.log and slurmd-$1.log"
}

start() {
  mkdir -p "$DIR"/{etc,state,spool,run,log}
  install_if_missing
  write_configs
  resolvable_node_names
  start_munge
  start_mariadb
  start_daemon slurmdbd "$DIR/run/slurmdbd.pid" slurmdbd
  for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
  sacctmgr -i add cluster prefexp-local >/dev/null 2>&1 || true  # registered once; later starts find it
  start_daemon slurmctld "$DIR/run/slurmctld.pid" slurmctld -f "$SLURM_CONF"
  for name in $(node_names); do
    start_daemon slurmd "$DIR/run/slurmd-$name.pid" slurmd -f "$SLURM_CONF" -N "$name"
  done
  for name in $(node_names); do wait_for_node "$name"; done
  log "up: node(s) $(node_names | paste -sd' ') ($CPUS CPUs), partition $PARTITION; in your shell: export SLURM_CONF=$SLURM_CONF"
}

stop() {
  for name in $(node_names | sed 's/^/slurmd-/') slurmctld slurmdbd mariadb munged; do
    local pid=$DIR/run/$name.pid
    if alive "$pid"; then
      kill "$(cat "$pid")"
      for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
      alive "$pid" && kill -9 "$(cat "$pid")"
      log "stopped $name"
    fi
    rm -f "$pid"
  done
}

status() {
  local ok=0
  for name in slurmctld $(node_names | sed 's/^/slurmd-/') slurmdbd mariadb; do
    alive "$DIR/run/$name.pid" && echo "$name: running (pid $(cat "$DIR/run/$name.pid"))" || { echo "$name: stopped"; ok=1; }
  done
  [[ $ok == 0 ]] && sinfo && squeue
  return $ok
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  # The local resources for conf/hydra/launcher/slurm.yaml (sized for 8-GPU nodes): one CPU and
  # 2 GB per job, no GPU request, the partition above. Two sweep points run at once.
  overrides) echo "hydra.launcher.partition=$PARTITION hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2" \
                  "hydra.launcher.gpus_per_node=null hydra.launcher.timeout_min=60" ;;
  *) echo "usage: $0 start|stop|status|env|overrides" >&2; exit 2 ;;
esac
