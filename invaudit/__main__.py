"""``python -m invaudit`` (what torchrun runs: ``torchrun -m invaudit train ...``)."""

from .cli import main

main(prog_name="invaudit")
