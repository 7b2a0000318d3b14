"""DVC re-runs exactly what a change affects: every params key is flipped, one at a time, in
a real DVC repo, and `dvc status` must report exactly the stages of the key's row. dvc.yaml
must list exactly the params keys and code that mmbert.stages says each stage reads."""

from __future__ import annotations

from contextlib import chdir
from pathlib import Path

import pytest
import yaml

from helpers import REPO, copy_repo
from mmbert.config import load_config
from mmbert.stages import all_stages, stage_inputs_code, stage_params

PHASES = ["pretrain", "midtrain", "decay-eng", "decay-cont", "decay-all"]
MIX = {f"mix@{p}" for p in PHASES}
TRAIN = {f"train@{p}" for p in PHASES}
SUITE_STAGES = {"eval-glue", "eval-xtreme", "eval-lowres_qa", "eval-mteb"}
EVERY = {"corpus", "tokenizer", "merge", "eval", "bench", "report"} | MIX | TRAIN | SUITE_STAGES
TRAIN_PHASE = ("init_from", "mask_rate", "rope_theta_global", "rope_theta_local", "weight_decay", "lr", "batch")


def expected_stages(key: str) -> set[str] | None:
    """The stages a change of `key` must make stale (None: a key this table does not know)."""
    parts = key.split(".")
    head = parts[0]
    if head == "output_dir":
        return EVERY  # every stage's outputs move
    if head == "seed":
        return MIX | TRAIN | {"bench"}
    if key.startswith("corpus.hub."):
        return MIX  # which revision, detokenizer and files a hub phase reads
    if head in ("corpus", "tokenizer", "bench"):
        return {head}
    if key.startswith("train.heldout."):  # the phases' and the merge's own held-out loss
        return TRAIN | {"merge"}
    if head in ("model", "train"):
        return TRAIN
    if head == "mix":  # how every phase's rows are cut, packed and stored
        return MIX
    if head == "runtime":
        return set()  # how a run executes: invalidates nothing
    if head == "checkpoints":  # an external model's stage; none declared: no stage reads the empty section
        return {f"fetch@{parts[1]}"} if len(parts) > 1 else set()
    if head == "publish":  # off in params.yaml: no stage; on, the publish stage reads it all (test_publish)
        return set()
    if head == "merge":
        return {"merge", "eval", "report"} if parts[1] == "base" else {"merge"}
    if head == "eval":
        return {"eval"}
    if head == "suites":  # a suite's own keys re-run that suite; the shared ones, every suite
        if key == "suites.compare_with":
            return SUITE_STAGES | {"report"}
        return {f"eval-{parts[1]}"} if f"eval-{parts[1]}" in SUITE_STAGES else SUITE_STAGES
    if head == "phases" and parts[1] in PHASES:
        phase, field = parts[1], parts[2]
        if field == "init_from":
            return {f"train@{phase}", "eval", "report"}
        if field == "data":
            extra = {"report"} if parts[3] == "temperature" else set()
            return {f"mix@{phase}"} | extra | ({f"train@{phase}"} if parts[3] in ("tokens", "seq_len") else set())
        if field in TRAIN_PHASE:
            return {f"train@{phase}"}
    return None


def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys.extend(leaf_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def flipped(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 1e-3
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return value + (value[-1:] or ["x"])
    if isinstance(value, dict):
        return {"xxx_Zzzz": 0.01}
    return "x"  # None


def _set(tree: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for part in path:
        tree = tree[part]
    tree[last] = value


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def test_every_params_key_has_a_row():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    unknown = [key for key in leaf_keys(params) if expected_stages(key) is None]
    assert not unknown, f"params keys without a row in expected_stages(): {unknown}"


def _dvc_stages(repo: Path):
    from dvc.repo import Repo

    return {stage.addressing: stage for stage in Repo(str(repo)).index.stages}


def test_dvc_yaml_lists_exactly_what_each_stage_reads():
    cfg = load_config(REPO / "params.yaml")
    stages = _dvc_stages(REPO)
    assert set(stages) == set(all_stages(cfg))
    for name, stage in stages.items():
        kind = name.split("@")[0]
        params = sorted(key for dep in stage.deps if dep.def_path == "params.yaml" for key in dep.params)
        assert params == sorted(stage_params(cfg, name)), name
        code = sorted(d.def_path for d in stage.deps if d.def_path.startswith("mmbert/"))
        assert code == sorted(stage_inputs_code(kind)), f"{name}: dvc.yaml code deps differ from its imports"


@pytest.fixture(scope="module")
def committed_repo(tmp_path_factory) -> Path:
    """A copy of the project as a git+DVC repo whose every stage is recorded in dvc.lock,
    with placeholder outputs (no stage is run: only the bookkeeping is under test)."""
    from dvc.repo import Repo

    repo = copy_repo(tmp_path_factory.mktemp("staleness") / "repo")
    with chdir(repo):  # DVC's in-process API resolves paths from the working directory
        dvc = Repo(".")
        for stage in dvc.index.stages:
            for item in [*stage.outs, *stage.deps]:
                folder = Path(item.fs_path)
                if not folder.exists() and "outputs" in folder.parts:
                    folder.mkdir(parents=True)
                    (folder / "placeholder").write_text(stage.addressing)
        dvc.commit(force=True)
        assert dvc.status() == {}
    return repo


SHARDS = 4  # one `dvc status` per params key, ~1 s each: the keys in shards that xdist spreads


@pytest.fixture()
def params_parsed_once_per_content(monkeypatch):
    """DVC parses params.yaml once for every stage that reads it (20 parses of the same bytes
    per `status`, ~40 % of its time here); give each stage the one parse of those bytes. A
    copy each time, so no stage sees another's changes; new bytes are parsed anew."""
    import copy

    import dvc.dependency.param as param

    parse, parsed = param.load_path, {}

    def load_path(path, fs, **kwargs):
        with fs.open(path, "rb") as handle:
            key = (path, handle.read(), tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed.clear()
            parsed[key] = parse(path, fs, **kwargs)
        return copy.deepcopy(parsed[key])

    monkeypatch.setattr(param, "load_path", load_path)


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_each_key_makes_exactly_its_stages_stale(committed_repo, shard, params_parsed_once_per_content):
    path = committed_repo / "params.yaml"
    original = path.read_text()
    params = yaml.safe_load(original)
    keys = leaf_keys(params)[shard::SHARDS]
    wrong = {}
    with chdir(committed_repo):
        _flip_each(path, original, params, keys, wrong)
    assert not wrong, yaml.safe_dump(wrong)


def test_the_shards_cover_every_key():
    keys = leaf_keys(yaml.safe_load((REPO / "params.yaml").read_text()))
    shards = [keys[shard::SHARDS] for shard in range(SHARDS)]
    assert sorted(k for shard in shards for k in shard) == sorted(keys) and all(shards)


def _flip_each(path: Path, original: str, params: dict, keys: list[str], wrong: dict) -> None:
    from dvc.repo import Repo

    try:
        for key in keys:
            changed = yaml.safe_load(original)
            _set(changed, key, flipped(_get(params, key)))
            path.write_text(yaml.safe_dump(changed, sort_keys=False))
            stale = set(Repo(".").status())
            if stale != expected_stages(key):
                wrong[key] = {"stale": sorted(stale), "expected": sorted(expected_stages(key))}
    finally:
        path.write_text(original)
    assert Repo(".").status() == {}
