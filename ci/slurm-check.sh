#!/usr/bin/env bash
# A real Slurm, not a mock: Debian's slurm-wlm (munged, slurmctld and slurmd on localhost, one
# node) runs a tiny sweep (procedural world, toy CLIP, 2 methods x 2 seeds, 2 epochs) submitted
# with `maple sweep --slurm --submit`; every job's results must equal those of the same sweep
# run with `maple sweep --local`. Called by .ci/run after the release build; not part of
# `cargo test` (which passes without Slurm). Needs root (installs packages, starts daemons).
#
# Any service that cannot start fails the check loudly; nothing is skipped.
#
# Environment: MAPLE (the binary; default target/release/maple, built when missing),
# SLURM_CHECK_DIR (work folder; default /tmp/maple-slurm-check, emptied first),
# SLURM_CHECK_TIMEOUT (seconds to wait for the array; default 240).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
MAPLE=${MAPLE:-$REPO/target/release/maple}
WORK=${SLURM_CHECK_DIR:-/tmp/maple-slurm-check}
TIMEOUT=${SLURM_CHECK_TIMEOUT:-240}
STARTED=$(date +%s)

say() { printf '[slurm-check %3ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }

dump_logs() {
  for f in "$WORK"/slurmctld.log "$WORK"/slurmd.log "$WORK"/sweep-slurm/slurm/*.log; do
    [ -f "$f" ] || continue
    echo "----- last lines of $f" >&2
    tail -n 30 "$f" >&2
  done
}

fail() {
  echo >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "SLURM CHECK FAILED: $*" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  dump_logs
  exit 1
}

# Stops what this script started (by pid file), also what an earlier run left behind.
stop_daemons() {
  for d in slurmd slurmctld; do
    local pidfile=$WORK/$d.pid
    if [ -f "$pidfile" ]; then
      local pid
      pid=$(cat "$pidfile")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$pidfile"
    fi
  done
  if [ -f "$WORK/munged.started" ] && [ -f /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$WORK/munged.started"
  fi
}

[ "$(id -u)" = 0 ] || fail "must run as root (installs slurm-wlm and munge, starts their daemons)"

say "preparing $WORK"
if [ -d "$WORK" ]; then stop_daemons; fi
rm -rf "$WORK"
mkdir -p "$WORK/state" "$WORK/spool"
trap 'stop_daemons' EXIT

# 1. Packages (idempotent).
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
  ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; fail "apt-get update failed"; }
  apt-get install -y -q --no-install-recommends slurm-wlm munge >>"$WORK/apt.log" 2>&1 ||
    { tail -20 "$WORK/apt.log" >&2; fail "apt-get install slurm-wlm munge failed"; }
fi
say "$(slurmctld -V)"

# 2. The maple binary.
if [ ! -x "$MAPLE" ]; then
  say "building $MAPLE"
  cargo build --release --locked -p maple-cli
fi
[ -x "$MAPLE" ] || fail "no maple binary at $MAPLE"

# 3. munge: a key, then munged as the munge user unless one already answers.
if ! (munge -n | unmunge) >/dev/null 2>&1; then
  say "starting munged"
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null 2>&1 ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- munged >"$WORK/munged.out" 2>&1 || munged --force >>"$WORK/munged.out" 2>&1 ||
    { cat "$WORK/munged.out" >&2; fail "munged did not start"; }
  touch "$WORK/munged.started"
  for _ in $(seq 50); do (munge -n | unmunge) >/dev/null 2>&1 && break; sleep 0.1; done
fi
(munge -n | unmunge) >/dev/null 2>&1 || fail "munge does not work (munge -n | unmunge)"

# 4. A one-node cluster on localhost, its files in $WORK.
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
export SLURM_CONF=$WORK/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=maplecheck
SlurmctldHost=localhost
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=check Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

say "starting slurmctld and slurmd ($CPUS CPUs, ${MEM_MB} MB)"
slurmctld -f "$SLURM_CONF" -i >"$WORK/slurmctld.out" 2>&1 ||
  { cat "$WORK/slurmctld.out" >&2; fail "slurmctld did not start"; }
slurmd -f "$SLURM_CONF" -N localhost >"$WORK/slurmd.out" 2>&1 ||
  { cat "$WORK/slurmd.out" >&2; fail "slurmd did not start"; }

state=""
for _ in $(seq 120); do
  state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail "the node is not idle after 60 s (sinfo says: '${state:-nothing}')"
say "node localhost idle"

# 5. The sweep: methods MaPLe and one other (coop when it exists, else zero-shot CLIP).
other=clip
"$MAPLE" base2novel --help | grep -q coop && other=coop
grid=(--dataset procedural --method "maple,$other" --seeds 1,2 --epochs 2)

say "submitting the sweep (maple,$other x seeds 1,2) with maple sweep --slurm --submit"
"$MAPLE" sweep --out "$WORK/sweep-slurm" "${grid[@]}" --slurm --submit --cpus-per-task 1 \
  --time 10 --job-name maple-check >"$WORK/submit.out" 2>"$WORK/submit.err" ||
  { cat "$WORK/submit.out" "$WORK/submit.err" >&2; fail "maple sweep --slurm --submit failed"; }
job=$(tail -n 1 "$WORK/submit.out")
[[ "$job" =~ ^[0-9]+$ ]] || { cat "$WORK/submit.out" "$WORK/submit.err" >&2; fail "no job id from the submission"; }
tasks=$(grep -c '"index"' "$WORK/sweep-slurm/sweep.json")
say "array job $job submitted ($tasks tasks: $(grep '^#SBATCH --array' "$WORK/sweep-slurm/sweep.sbatch"))"

say "meanwhile the same sweep with --local"
"$MAPLE" sweep --out "$WORK/sweep-local" "${grid[@]}" --local >"$WORK/local.out" 2>&1 ||
  { cat "$WORK/local.out" >&2; fail "maple sweep --local failed"; }

deadline=$(($(date +%s) + TIMEOUT))
while [ -n "$(squeue -h -j "$job" -o %i 2>/dev/null)" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { squeue -j "$job" >&2; scancel "$job" || true; fail "the array did not finish within $TIMEOUT s"; }
  sleep 1
done
say "array job $job finished"

# Every array task completed (the controller keeps finished jobs for MinJobAge, 300 s).
states=$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z_]*' | sort | uniq -c)
echo "$states"
if echo "$states" | grep -v -q 'JobState=COMPLETED'; then fail "array tasks not COMPLETED: $states"; fi
ntasks=$(scontrol -o show job "$job" | grep -c 'JobState=COMPLETED')
[ "$ntasks" = "$tasks" ] || fail "$ntasks tasks completed, the manifest has $tasks jobs"
"$MAPLE" sweep --status --out "$WORK/sweep-slurm" | tee "$WORK/status.out"
grep -q "^$tasks jobs: $tasks done, 0 running, 0 failed, 0 pending" "$WORK/status.out" ||
  fail "maple sweep --status does not report every job done"
ls "$WORK"/sweep-slurm/slurm/"${job}"_*.log >/dev/null 2>&1 || fail "no per-task logs named ${job}_<index>.log"

# 6. Slurm's results equal --local's: per seed accuracies and the summaries' numbers.
python3 - "$WORK/sweep-local" "$WORK/sweep-slurm" <<'PY' || fail "Slurm and --local results differ (see above)"
import json, pathlib, sys
local, slurm = map(pathlib.Path, sys.argv[1:])
manifest = json.loads((slurm / "sweep.json").read_text())
def numbers(path):
    d = json.loads(path.read_text())
    if "rows" in d:  # a command's summary
        return [(r["dataset"], {k: r[k] for k in ("base", "novel", "hm", "accuracy") if k in r}) for r in d["rows"]]
    return [(e["dataset"], e["classes"], e["accuracy"]) for e in d["evals"]]
bad, compared = [], 0
for job in manifest["jobs"]:
    s_dir = pathlib.Path(job["output_dir"])
    l_dir = local / s_dir.relative_to(slurm)
    files = sorted(p.relative_to(s_dir) for p in s_dir.rglob("result*.json"))
    if not any(f.name == "results.json" for f in files):
        bad.append(f"{job['name']}: no results.json under {s_dir}")
    for f in files:
        compared += 1
        if not (l_dir / f).is_file():
            bad.append(f"{job['name']}: {f} missing from the --local sweep")
        elif numbers(s_dir / f) != numbers(l_dir / f):
            bad.append(f"{job['name']}: {f}: slurm {numbers(s_dir / f)} != local {numbers(l_dir / f)}")
for b in bad:
    print("  " + b, file=sys.stderr)
print(f"compared {compared} result files of {len(manifest['jobs'])} jobs: {'all equal' if not bad else f'{len(bad)} differ'}")
sys.exit(1 if bad else 0)
PY

# 7. Re-running the sweep submits nothing: every job is done.
"$MAPLE" sweep --out "$WORK/sweep-slurm" --slurm --submit >"$WORK/resubmit.out" 2>&1 ||
  { cat "$WORK/resubmit.out" >&2; fail "re-running the finished sweep failed"; }
grep -q "nothing to submit" "$WORK/resubmit.out" || { cat "$WORK/resubmit.out" >&2; fail "a finished sweep was resubmitted"; }

stop_daemons
trap - EXIT
say "OK: Slurm ran the $tasks jobs of the sweep and their results equal --local's"
