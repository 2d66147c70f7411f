"""Train and test a RecBole sequential model with generated negatives (the ``recbole-genni`` command).

    python run_recbole_genni.py --model=SASRec --dataset=ml-100k --config_files="a.yaml b.yaml" --neg_sampler=genni

Any other ``--key=value`` overrides that config key, as in RecBole.
"""

import sys

from recbole_genni.cli import main

if __name__ == "__main__":
    sys.exit(main())
