#!/usr/bin/env bash
# A benchmark grid on the GPU lent by the `device` tool, within one 10-minute call.
#
#   here (network, ../shared/datasets):  bash benchmarks/device.sh prepare
#   on the device:  run(command="bash benchmarks/device.sh run GRID [run_grid.py options]",
#                       carry=[".whl", ".device_data"], timeout_s=600)
#
# The device machine has Python 3.12 with PyTorch, numpy 2 and SciPy for numpy 2, no RecBole and no network: `prepare`
# downloads RecBole 1.2.1's stack as wheels for it into .whl/ (pandas<2.3, about 16 MB; numpy stays 2, for which
# recbole_genni restores the aliases RecBole's Config uses) and xz-compresses the five
# S3 sequence files into .device_data/ (both git-ignored, carried). `run` installs them and this package under
# /tmp/site, converts the data, and runs the grid for at most DEVICE_GRID_SECONDS (default 540): finished cells are
# appended to $OUT/<grid>.jsonl and reported in $OUT/<grid>.md with plots as they finish, so a cut grid keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  rm -rf .whl && python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl pandas==2.2.3 recbole==1.2.1 colorlog==4.7.2 texttable==1.7.0 pytz==2024.2 tzdata==2024.2
  mkdir -p .device_data
  for name in Beauty Sports_and_Outdoors Toys_and_Games Yelp LastFM; do
    xz -9 -c "../shared/datasets/$name/$name.txt" > ".device_data/$name.txt.xz"
  done
  du -sh .whl .device_data
  ;;
run)
  grid="${2:?usage: bash benchmarks/device.sh run GRID [run_grid.py options]}"
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl .
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
  python3 -c "import numpy, torch, recbole; print('numpy', numpy.__version__, 'torch', torch.__version__, torch.cuda.get_device_name())"
  for f in .device_data/*.txt.xz; do python3 -m recbole_genni.data.convert "$f" --out dataset/ >/dev/null & done; wait
  out="${OUT:-benchmarks/results}/$(basename "$grid" .yaml).jsonl"
  timeout "${DEVICE_GRID_SECONDS:-540}" python3 benchmarks/run_grid.py "$grid" --out "$out" "${@:3}" \
    || echo "grid stopped (exit $?): the finished cells are in $out"
  ;;
*)
  echo "usage: bash benchmarks/device.sh prepare | run GRID [run_grid.py options]" >&2
  exit 2
  ;;
esac
