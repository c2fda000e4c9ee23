#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG NPROC [args of tools/train.py]
# One process per GPU through torchrun; on a machine without GPUs, NPROC CPU processes (gloo).
#
# Several machines: run the same command on each, NPROC being the processes of that machine,
# with (defaults in brackets)
#   NNODES       number of machines [1]
#   NODE_RANK    this machine's index, 0 .. NNODES-1; 0 is the master [0]
#   MASTER_ADDR  address of machine 0, reachable from all the others [127.0.0.1]
#   PORT         a free TCP port on machine 0 for the rendezvous [29500]
#   PYTHON       the interpreter [python]
# e.g. two machines of 8 GPUs:
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.1.1.1 bash tools/dist_train.sh CONFIG 8   # on 10.1.1.1
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.1.1.1 bash tools/dist_train.sh CONFIG 8   # on the other
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR="$(cd "$(dirname "$0")" && pwd)"

PYTHONPATH="$DIR/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$DIR/train.py" \
    $CONFIG \
    --launcher pytorch ${@:3}
