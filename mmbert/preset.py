"""Presets: named sets of values written INTO params.yaml, so that params.yaml stays the one
place every setting lives (what DVC tracks is what the stages use).

    python -m mmbert.preset paper-small            # write the preset, print what changed
    python -m mmbert.preset micro --dry-run        # print what would change

A preset is the embedded default (`presets/embedded.yaml`, identical to the committed
params.yaml), or the preset it `extends`, overlaid with the preset's file; `architecture:
NAME` takes the model block and vocabulary from `presets/architectures.yaml`; `replace`
lists sections the preset sets whole. Applying one keeps where the run goes and which cluster
runs it (`output_dir`, `runtime.ray_address`), keeps the comments of params.yaml, and
regenerates dvc.yaml beside it (mmbert.dvc_yaml): the preset's phases are DVC's chain.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import sys
from pathlib import Path
from typing import Any

from mmbert.config import ConfigError, parse_config, read_yaml
from mmbert.modeling import ARCHITECTURES

PRESETS_DIR = Path(__file__).parent / "presets"
KEPT = (("output_dir",), ("runtime", "ray_address"))


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem != "architectures")


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and value:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def preset_values(name: str) -> dict[str, Any]:
    """Every params key as the preset sets it: its file over the preset it `extends` (the
    embedded default if none); the top-level sections it lists in `replace` are its own
    whole (e.g. a preset with other phases than the default's)."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file() or name == "architectures":
        raise ConfigError(f"preset {name!r} is unknown; expected one of {available_presets()}")
    overlay = read_yaml(path) if path.read_text(encoding="utf-8").strip() else {}
    base_name = overlay.pop("extends", None)
    replaced = overlay.pop("replace", [])
    arch = overlay.pop("architecture", None)
    if arch is not None:
        table = read_yaml(ARCHITECTURES)
        if arch not in table:
            raise ConfigError(f"{path}: architecture {arch!r} is not in {ARCHITECTURES}")
        overlay = deep_merge(overlay, {"model": table[arch]["model"],
                                       "tokenizer": {"vocab_size": table[arch]["vocab_size"]}})
    base = preset_values(base_name) if base_name else read_yaml(PRESETS_DIR / "embedded.yaml")
    for key in replaced:
        base.pop(key, None)
    return deep_merge(base, overlay)


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _sync(node, wanted: dict[str, Any], prefix: str, changes: list[tuple[str, Any, Any]]) -> None:
    """Make the round-trip mapping `node` hold `wanted`, keeping its comments and styles."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    for key in [k for k in node if k not in wanted]:
        changes.append((f"{prefix}{key}", node[key], "(removed)"))
        del node[key]
    for key, value in wanted.items():
        old = node.get(key, "(absent)")
        if isinstance(value, dict) and isinstance(old, CommentedMap) and value:
            _sync(old, value, f"{prefix}{key}.", changes)
            continue
        if _plain(old) == value:
            continue
        changes.append((f"{prefix}{key}", _plain(old), value))
        if isinstance(value, list) and isinstance(old, CommentedSeq) and old.fa.flow_style():
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        elif isinstance(value, dict) and isinstance(old, CommentedMap) and old.fa.flow_style():
            value = CommentedMap(value)
            value.fa.set_flow_style()
        node[key] = value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def apply_preset(params_path: str | Path, name: str, *, dry_run: bool = False) -> list[tuple[str, Any, Any]]:
    """Write preset `name` into params.yaml (validated first); returns (key, old, new) per change."""
    from ruamel.yaml import YAML

    params_path = Path(params_path)
    wanted = copy.deepcopy(preset_values(name))
    current = read_yaml(params_path)
    for path in KEPT:
        try:
            _set(wanted, path, _get(current, path))
        except (KeyError, TypeError):
            pass
    parse_config(wanted, f"preset {name}")  # a preset that cannot run is never written
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 200
    yaml.indent(mapping=2, sequence=4, offset=2)  # params.yaml's own layout
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yaml.load(params_path.read_text(encoding="utf-8"))
    changes: list[tuple[str, Any, Any]] = []
    _sync(document, wanted, "", changes)
    if changes and not dry_run:
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        _replace_file(params_path, buffer.getvalue())
        pipeline = params_path.parent / "dvc.yaml"
        if pipeline.is_file():  # the chain follows the phases and checkpoints the preset names
            from mmbert.dvc_yaml import render

            _replace_file(pipeline, render(parse_config(wanted, f"preset {name}")))
    return changes


def _replace_file(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help=f"one of {available_presets()}")
    parser.add_argument("--params", default="params.yaml", help="the params file to write (default: params.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    args = parser.parse_args(argv)
    try:
        changes = apply_preset(args.params, args.name, dry_run=args.dry_run)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    verb = "would change" if args.dry_run else "changed"
    print(f"preset {args.name}: {verb} {len(changes)} key(s) of {args.params}")
    for key, old, new in changes:
        print(f"  {key}: {old!r} -> {new!r}")


if __name__ == "__main__":
    main()
