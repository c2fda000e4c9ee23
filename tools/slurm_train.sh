#!/usr/bin/env bash
# Train (or distil) on a Slurm cluster, one task per GPU, as mmpretrain's slurm_train.sh does.
#
# Usage: [GPUS=16] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
#
# Environment (defaults in brackets):
#   GPUS           total number of tasks (= GPUs) of the job [8]
#   GPUS_PER_NODE  GPUs of each node; tasks per node are min(GPUS, GPUS_PER_NODE) [8]
#   CPUS_PER_TASK  CPUs (dataloader workers + main process) per task [5]
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto --time=2-00:00:00" []
#   PY_ARGS        more arguments of tools/train.py, before those given on the command line []
#   PYTHON         the interpreter [python]
# Each task runs tools/train.py --launcher=slurm: MMEngine takes rank, world size and the master
# node from SLURM_PROCID / SLURM_NTASKS / SLURM_NODELIST (MASTER_PORT: 29500 unless set).
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [args of tools/train.py]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=${PY_ARGS:-""}
# fewer GPUs than a node has: one node with GPUS tasks, not a request Slurm would reject
TASKS_PER_NODE=$(( GPUS < GPUS_PER_NODE ? GPUS : GPUS_PER_NODE ))
DIR="$(cd "$(dirname "$0")" && pwd)"

# SRUN_ARGS and PY_ARGS are word-split on purpose: each holds several options
# shellcheck disable=SC2086
PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$TASKS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "${PYTHON:-python}" -u "$DIR/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm \
    $PY_ARGS "${@:5}"
