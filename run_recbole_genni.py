"""Train and test a RecBole sequential model with generated negatives.

    python run_recbole_genni.py --model=SASRec --dataset=ml-100k --config_files="a.yaml b.yaml" --neg_sampler=genni

Any other ``--key=value`` overrides that config key, as in RecBole.
"""

import argparse
import sys

from recbole_genni.utils import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="SASRec", help="RecBole model name, or GenNiSASRec")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name under data_path")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes on this machine (DDP: gloo on CPU, NCCL on GPU)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines")
    parser.add_argument("--ip", default="localhost", help="address of the machine with rank 0")
    parser.add_argument("--port", default="5678", help="free port on that machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    args, _ = parser.parse_known_args(argv)
    config_files = args.config_files.strip().split(" ") if args.config_files else None

    from recbole_genni import run_recbole_genni

    return run_cli(lambda: run_recbole_genni(
        model=args.model, dataset=args.dataset, config_file_list=config_files, nproc=args.nproc,
        world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset,
    ))


if __name__ == "__main__":
    sys.exit(main())
