"""Serve the deployments of `reproduce-mmbert` from this process, for a Prefect server:

    prefect server start                      # terminal 1 (UI on http://127.0.0.1:4200)
    python -m flows.serve                     # terminal 2: serves the deployments below
    prefect deployment run reproduce-mmbert/full --watch
    prefect deployment run reproduce-mmbert/eval-only --watch
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve

from flows.reproduce import reproduce_mmbert

DEPLOYMENTS = {"full": {}, "eval-only": {"only_eval": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the DVC repository the deployments run in")
    args = parser.parse_args()
    repo = str(Path(args.repo).resolve())
    serve(*(reproduce_mmbert.to_deployment(name=name, parameters={"repo_dir": repo, **extra},
                                           description=f"mmBERT reproduction ({name}) in {repo}")
            for name, extra in DEPLOYMENTS.items()))


if __name__ == "__main__":
    main()
