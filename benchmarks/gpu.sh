#!/usr/bin/env bash
# Run a benchmark suite on a machine with a GPU and bring back its JSONL records.
#
#   bash benchmarks/gpu.sh pack                      # here, with network: wheels and data into .whl/ and .gpu_data/
#   bash benchmarks/gpu.sh run SUITE [run_suite.py options]   # there, from a copy of this checkout with both folders
#
# `pack` downloads RecBole 1.2.1's stack as wheels for the GPU machine's Python (GPU_PYTHON, default 3.12; that
# machine is expected to have PyTorch with CUDA, numpy and SciPy already, and needs no network) and xz-compresses
# the S3-Rec sequence files of ../shared/datasets into .gpu_data/, with their item groups (both git-ignored). `run`
# installs the wheels and this package under /tmp/site, converts the data into dataset/, puts the item groups where
# the suites name them, and runs the suite for at most GPU_SUITE_SECONDS (default 540). Each finished cell is
# appended to $OUT/<suite>.jsonl (OUT defaults to benchmarks/results) as it finishes, so a suite cut by the time
# limit keeps its finished cells; run it again to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
pack)
  rm -rf .whl && python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -d .whl pandas==2.2.3 recbole==1.2.1 colorlog==4.7.2 texttable==1.7.0 pytz==2024.2 tzdata==2024.2
  mkdir -p .gpu_data
  for name in Beauty Sports_and_Outdoors Toys_and_Games Yelp LastFM Amazon2014-Six; do
    xz -9 -c "../shared/datasets/$name/$name.txt" > ".gpu_data/$name.txt.xz"
  done
  cp ../shared/datasets/*/*.domains.tsv .gpu_data/  # the suites' item groups (categories)
  du -sh .whl .gpu_data
  ;;
run)
  suite="${2:?usage: bash benchmarks/gpu.sh run SUITE [run_suite.py options]}"
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl .
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
  python3 -c "import numpy, torch, recbole; print('numpy', numpy.__version__, 'torch', torch.__version__, torch.cuda.get_device_name())"
  for f in .gpu_data/*.txt.xz; do python3 -m recbole_genni.data.convert "$f" --out dataset/ >/dev/null & done; wait
  for f in .gpu_data/*.domains.tsv; do  # where the suites name them, beside the data they came with
    [ -e "$f" ] || continue
    name=$(basename "$f" .domains.tsv) && mkdir -p "../shared/datasets/$name" && cp -n "$f" "../shared/datasets/$name/"
  done
  out="${OUT:-benchmarks/results}/$(basename "$suite" .yaml).jsonl"
  timeout "${GPU_SUITE_SECONDS:-540}" python3 benchmarks/run_suite.py "$suite" --out "$out" "${@:3}" \
    || echo "suite stopped (exit $?): the finished cells are in $out"
  ;;
*)
  echo "usage: bash benchmarks/gpu.sh pack | run SUITE [run_suite.py options]" >&2
  exit 2
  ;;
esac
