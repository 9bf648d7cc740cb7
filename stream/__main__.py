"""`python -m stream COMMAND`: our commands below; anything else is Faust's CLI.

python -m stream dev                              # what `make run` runs
python -m stream worker -l info --web-port 6066   # one worker (Faust's CLI)
python -m stream fit-ltv purchases.jsonl --out ltv-params.json   # BG/NBD + Gamma-Gamma
python -m stream evaluate                         # ranking quality on real orders
python -m stream bench memory                     # memory per pair and per customer
python -m stream replay events.jsonl              # load history into the input topics
"""

from __future__ import annotations

import importlib
import sys

# command -> module whose `main(argv) -> int` runs it (imported only when used,
# so that `dev` does not build the Faust app in the parent process).
COMMANDS = {
    "dev": "stream.dev",
    "fit-ltv": "stream.fit",
    "evaluate": "stream.evaluate",
    "bench": "stream.bench",
    "replay": "stream.replay",
}


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in COMMANDS:
        module = importlib.import_module(COMMANDS[command])
        sys.exit(module.main(sys.argv[2:]))
    from stream.app import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
