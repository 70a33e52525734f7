#!/usr/bin/env bash
# emb-train as a Slurm job: one `accelerate launch` per node, each starting one process per GPU.
# emb-train sees LOCAL_RANK (set by the launcher) and runs in place; negatives are gathered across all processes.
#
#   sbatch examples/slurm-train.sh                              # 1 node x 8 GPUs of 80 GB, ZeRO-3, the paper's recipe
#   NODES=2 sbatch -N 2 examples/slurm-train.sh                 # 2 nodes x 8 GPUs (128 examples per GPU)
#
# The paper (E5-mistral): Mistral-7B, batch 2048, LoRA r16, lr 1e-4, 100 warm-up steps, 1 epoch, max length 512,
# gradient checkpointing, mixed precision, DeepSpeed ZeRO-3 (on 32 V100s). --batch-size is global: 256 examples per
# GPU on 8 GPUs, embedded in GradCache mini-batches of 32 texts.
#
# Memory per GPU, from `emb-train --estimate-memory` with these settings (an estimate: this script has not been run
# on a GPU; the formula was checked against measured peaks on CPUs only, see docs/train.md "Memory"):
#   ZeRO-3, --mini-batch-size 32: 17.1 GiB   (largest that fits 80 GB: 128, 56.1 GiB)
#   DDP (no --deepspeed), 32:     49.1 GiB   (largest that fits 80 GB: 64, 66.5 GiB)
# The job prints the estimate first; emb-train itself refuses settings whose estimate exceeds the GPU's memory.
#SBATCH --job-name=emb-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --output=emb-train-%j.log
set -euo pipefail

NODES="${NODES:-${SLURM_NNODES:-1}}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
MODEL="${MODEL:-mistralai/Mistral-7B-v0.1}"   # a local folder or a hub id already in the HF cache
DATA="${DATA:-train.jsonl}"
OUT="${OUT:-model}"
MINI_BATCH="${MINI_BATCH:-32}"
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
MASTER_PORT="${MASTER_PORT:-29500}"
export EMBTOOLS_HOME="${EMBTOOLS_HOME:-$HOME/.cache/embtools}"

TRAIN_OPTIONS="--model '$MODEL' --batch-size 2048 --mini-batch-size $MINI_BATCH --lr 1e-4 --warmup-steps 100 \
  --epochs 1 --max-length 512 --lora-rank 16 --mixed-precision bf16 --gradient-checkpointing --deepspeed zero3"

# The per-GPU estimate for these settings (reads the model's config.json only; stdout is its JSON record).
eval "emb-train $TRAIN_OPTIONS --num-processes $((NODES * GPUS_PER_NODE)) --estimate-memory" >/dev/null

# Every node runs the same command; --machine_rank comes from the node's Slurm rank. Checkpoints every 50 steps
# make a requeued job (`--requeue`, or a resubmission) continue exactly with --resume. OUT and its checkpoints must be
# on a filesystem every node sees (each rank writes its ZeRO partition). Each process embeds its 64 examples in
# GradCache mini-batches of --mini-batch-size ($MINI_BATCH), under ZeRO-3 as under DDP (see docs/train.md).
srun --kill-on-bad-exit=1 bash -c "python -m accelerate.commands.launch \
  --num_machines $NODES --num_processes $((NODES * GPUS_PER_NODE)) --machine_rank \$SLURM_NODEID \
  --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT --multi_gpu --mixed_precision bf16 \
  -m embtools.commands.train '$DATA' -o '$OUT' $TRAIN_OPTIONS --save-every 50 --resume"
