"""``python -m recbole_genni``: the ``recbole-genni`` command."""

from recbole_genni.cli import console_main

console_main()
