"""The ``recbole-genni`` command (also ``python -m recbole_genni`` and ``run_recbole_genni.py``): train and test a
RecBole sequential model with generated negatives.

    recbole-genni --model=SASRec --dataset=ml-100k --config_files="a.yaml b.yaml" --neg_sampler=genni

Any other ``--key=value`` overrides that config key, as in RecBole.
"""

import argparse
import os
import sys

from recbole_genni.errors import GenNiConfigError
from recbole_genni.utils import run_cli


def _yaml_keys(name):
    """``(key, default, about)`` of each setting line of a properties YAML file, or ``(heading, None, None)`` for
    a section's heading comment (a comment line after a blank line, followed by a setting)."""
    from recbole_genni.config import properties_dir

    with open(os.path.join(properties_dir(), name), encoding="utf-8") as f:
        text = [line.strip() for line in f]
    for before, line, after in zip([""] + text, text, text[1:] + [""]):
        if line.startswith("# ") and not before and after and not after.startswith("#"):
            yield line[2:].split(" (")[0], None, None
        elif line and not line.startswith("#"):
            setting, _, about = line.partition("#")
            key, _, default = setting.partition(":")
            yield key.strip(), default.strip() or "~", about.strip()


def package_keys_help() -> str:
    """This package's config keys with their defaults and what they do, by section, from ``overall.yaml``; then
    GenNiSASRec's own defaults of those keys (its recipe) and of its loss."""
    lines = ["config keys of this package (--key=value; RecBole's own keys work too):"]
    package = set()
    for key, default, about in _yaml_keys("overall.yaml"):
        if default is None:
            lines.append(f"\n  {key}")
        else:
            package.add(key)
            lines.append(f"    --{key}={default}  {about}")
    lines.append("\n  GenNiSASRec's own defaults (properties/model/GenNiSASRec.yaml)")
    lines += [f"    --{key}={default}  {about}" for key, default, about in _yaml_keys("model/GenNiSASRec.yaml")
              if key in package or key in ("loss_type", "position_from_end")]
    return "\n".join(lines)


def training_parser(description=__doc__) -> argparse.ArgumentParser:
    """The arguments of a training run, RecBole's conventions (unknown ``--key=value`` are config keys); its help
    lists this package's keys with their defaults."""
    parser = argparse.ArgumentParser(description=description, epilog=package_keys_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="SASRec", help="RecBole model name, or GenNiSASRec")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name under data_path")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files")
    return parser


def check_config_args(args):
    """Refuse what RecBole's command line would skip with a warning or stop on with a traceback: anything but
    ``--key=value`` (``--epochs 1`` trains 300 epochs there), a value holding ``=``, a key given twice."""
    seen = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key:
            raise GenNiConfigError(f"{arg}: not an option; config keys on the command line are --key=value.")
        if not sep:
            raise GenNiConfigError(f"--{key}: a config key on the command line takes its value after '=': "
                                   f"--{key}=VALUE.")
        if "=" in value:
            raise GenNiConfigError(f"--{key}: RecBole's command line drops a value holding '='; set it in a YAML "
                                   "file (--config_files).")
        if key in seen:
            raise GenNiConfigError(f"--{key}: given twice ({seen[key]!r} and {value!r}); give it once.")
        seen[key] = value


def config_files(args):
    return args.config_files.strip().split(" ") if args.config_files else None


def main(argv=None) -> int:
    parser = training_parser()
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes on this machine (DDP: gloo on CPU, NCCL on GPU)")
    parser.add_argument("--world_size", type=int, default=-1, help="processes on all machines")
    parser.add_argument("--ip", default="localhost", help="address of the machine with rank 0")
    parser.add_argument("--port", default="5678", help="free port on that machine")
    parser.add_argument("--group_offset", type=int, default=0, help="rank of this machine's first process")
    args, config_args = parser.parse_known_args(argv)

    from recbole_genni import run_recbole_genni

    def train():
        check_config_args(config_args)
        run_recbole_genni(model=args.model, dataset=args.dataset, config_file_list=config_files(args),
                          nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                          group_offset=args.group_offset)

    return run_cli(train)


def console_main():
    """The console scripts' entry point: the exit code of :func:`main`."""
    sys.exit(main())
