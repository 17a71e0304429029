#!/bin/bash
# Runs a guise jobs file as a Slurm job array: each array task takes one shard of the jobs,
# with no coordinator. See docs/BATCH.md.
#
#   sbatch --array=0-7 docs/batch/slurm.sh /shared/work/jobs.jsonl
#   sbatch --array=0-7%4 docs/batch/slurm.sh /shared/work/jobs.jsonl --jobs 2   # at most 4 at once, 2 workers each
#
# The jobs file, the photos it names and the folders it writes to must be on a file system
# every node sees. Each task keeps its own state file beside the jobs file
# (jobs.jsonl.state.I-of-N) and writes its summary to jobs.jsonl.summary.I-of-N.json.
#
# Resubmitting the same array (or `--requeue` after a preemption or node failure) resumes:
# finished jobs are skipped, unfinished ones run, failed ones are tried again. Keep the array's
# size the same between submissions; after changing it, finished jobs are still found (each
# task reads every shard's state file) but the failed ones' records stay in the old files.
#
# Exit status of a task: 0 all its jobs done or skipped, 6 some failed (the summary says which),
# 4 a model file is missing or damaged, 2 or 64 the jobs file or the options are wrong.

#SBATCH --job-name=guise-batch
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=guise-batch-%A_%a.log

set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: sbatch --array=0-N $0 JOBS.jsonl [guise batch options]" >&2
    exit 64
fi
jobs_file=$1
shift

: "${SLURM_ARRAY_TASK_ID:?not a Slurm array task: submit with sbatch --array=0-N}"
: "${SLURM_ARRAY_TASK_COUNT:?not a Slurm array task: submit with sbatch --array=0-N}"
# Shards count from 0 whatever the array's first index (--array=1-8 works too); the array must
# be one contiguous range with step 1, so that the task IDs cover 0..count-1 once shifted.
index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
count=$SLURM_ARRAY_TASK_COUNT

# guise from PATH, or set GUISE=/path/to/guise; models from GUISE_MODELS if set.
guise=${GUISE:-guise}

exec "$guise" batch "$jobs_file" \
    --shard "$index/$count" \
    --summary "$jobs_file.summary.$index-of-$count.json" \
    --quiet \
    "$@"
