"""`python -m stream`: `dev` runs everything locally, `fit-ltv` fits the LTV models;
anything else is Faust's CLI.

python -m stream dev                              # what `make run` runs
python -m stream worker -l info --web-port 6066   # one worker
python -m stream fit-ltv purchases.jsonl --out ltv-params.json   # BG/NBD + Gamma-Gamma
"""

from __future__ import annotations

import sys


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "dev":
        from stream.dev import main as dev_main

        sys.exit(dev_main(sys.argv[2:]))
    if command == "fit-ltv":
        from stream.fit import main as fit_main

        sys.exit(fit_main(sys.argv[2:]))
    from stream.app import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
