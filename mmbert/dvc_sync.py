"""Bring dvc.yaml's code deps in line with what each stage imports (`mmbert.stages`):

    python -m mmbert.dvc_sync          # rewrite dvc.yaml in place (comments kept)
    python -m mmbert.dvc_sync --check  # exit 1, naming the stages, if it is out of date

A developer's tool, imported by no stage: after adding a module to a stage's imports, run it
and commit dvc.yaml with the change (tests/test_staleness.py fails until the two agree).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mmbert.stages import stage_inputs_code

DVC_YAML = Path(__file__).resolve().parents[1] / "dvc.yaml"


def _code_deps(stage: dict[str, Any]) -> Any:
    return (stage.get("do") or stage)["deps"]


def sync(text_path: Path = DVC_YAML) -> list[str]:
    """Rewrite the code deps of every stage of `text_path`; the stages that changed."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(text_path.read_text(encoding="utf-8"))
    changed = []
    for name, stage in data["stages"].items():
        deps = _code_deps(stage)
        others = [d for d in deps if not str(d).startswith("mmbert/")]
        wanted = others + stage_inputs_code(name)
        if list(deps) != wanted:
            changed.append(name)
            deps[:] = wanted
    if changed:
        with text_path.open("w", encoding="utf-8") as handle:
            yaml.dump(data, handle)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stages whose code deps are out of date")
    args = parser.parse_args()
    if args.check:
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "dvc.yaml"
            shutil.copy(DVC_YAML, copy)
            stale = sync(copy)
    else:
        stale = sync()
    if stale:
        print(f"{'out of date' if args.check else 'updated'}: {', '.join(stale)}")
        sys.exit(1 if args.check else 0)
    print("dvc.yaml: code deps up to date")


if __name__ == "__main__":
    main()
