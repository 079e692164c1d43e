#!/usr/bin/env bash
# Example: score a large held-out set as a Slurm job array, one shard per task, then merge and gate.
#   sbatch --array=0-7 nightly-slurm.sh          # the shards; each reads SLURM_ARRAY_TASK_ID/COUNT
#   sbatch --dependency=afterok:<jobid> --wrap "nightly-slurm.sh merge"
# From cron:  0 2 * * *  cd /path/to/run && sbatch --array=0-7 nightly-slurm.sh
#SBATCH --job-name=flowlik-nightly
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
set -euo pipefail
FLOWLIK=${FLOWLIK:-/opt/flowlik/build/flowlik}
MODEL=${MODEL:-checkpoints/latest.pt}
DATA=${DATA:-data/heldout.npy}
OUT=${OUT:-results/$(date -u +%Y-%m-%d)}
mkdir -p "$OUT"

if [ "${1:-}" = merge ]; then
  "$FLOWLIK" merge "$OUT"/shard-*.json -o "$OUT/report.json" --per-sample "$OUT/per-sample.csv"
  # flowlik has no report-against-report gate yet: gate an unsharded `flowlik score --baseline` or a
  # `flowlik compare` run (see nightly-github.yml); merge gives the same report an unsharded run would.
  exit 0
fi

# The shard comes from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT; --resume lets a requeued task
# continue where it was stopped.
task=${SLURM_ARRAY_TASK_ID:-0}
"$FLOWLIK" score "$MODEL" --data "$DATA" --threads "${SLURM_CPUS_PER_TASK:-8}" \
  --per-sample "$OUT/shard-$task.csv" --resume -o "$OUT/shard-$task.json" -q
