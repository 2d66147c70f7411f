"""One benchmark cell per process: peak memory is the cell's own, and a crash or an out-of-memory kill costs one cell.

A script parses its command line with :func:`parse_args_or_run_cell` and runs each cell with
``run_cell_process(__file__, cell)``: the child process (the same script with ``--cell JSON``) measures the cell and
prints its record.
"""

import argparse
import json
import subprocess
import sys

PREFIX = "RESULT "


def parse_args_or_run_cell(parser: argparse.ArgumentParser, run_cell):
    """The parsed arguments; in a cell's child process (``--cell JSON``), run the cell, print its record and exit."""
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(PREFIX + json.dumps(run_cell(json.loads(args.cell))), flush=True)
        sys.exit(0)
    if getattr(args, "suite", "") is None:  # optional only for a cell's child process
        parser.error("the suite YAML (benchmarks/suites/*.yaml) is required")
    return args


def run_cell_process(script, cell: dict, env=None):
    """Run ``script --cell <cell as JSON>``: ``(its record, or None when it printed none; the CompletedProcess)``."""
    proc = subprocess.run(
        [sys.executable, str(script), "--cell", json.dumps(cell)], capture_output=True, text=True, env=env
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(PREFIX)]
    return (json.loads(lines[-1][len(PREFIX):]) if lines else None), proc
