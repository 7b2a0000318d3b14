from __future__ import annotations

import pytest
import yaml

from mmbert.config import ConfigError, available_profiles, load_config, parse_config
from mmbert.corpus.catalog import check_phase_languages


def test_params_yaml_is_valid(repo_root):
    cfg = load_config(repo_root / "params.yaml")
    assert cfg.profile == "embedded"
    assert list(cfg.phases) == ["pretrain", "midtrain", "decay-eng", "decay-cont", "decay-all"]


@pytest.mark.parametrize("profile", ["embedded", "micro", "paper-small", "paper-base"])
def test_every_profile_validates(profile, raw_params, tmp_path):
    raw_params["profile"] = profile
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw_params, sort_keys=False))
    assert load_config(path).profile == profile


def test_profiles_are_listed():
    assert {"embedded", "micro", "paper-small", "paper-base"} <= set(available_profiles())


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        check_phase_languages(parse_config(raw))
    return str(info.value)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda p: p["phases"]["pretrain"]["lr"].update(peak=-1e-3), "phases.pretrain.lr.peak"),
        (lambda p: p["phases"]["midtrain"]["data"].update(temperature=0.0), "phases.midtrain.data.temperature"),
        (lambda p: p["phases"]["midtrain"]["data"].update(temperature=1.5), "phases.midtrain.data.temperature"),
        (lambda p: p["phases"]["decay-all"].update(mask_rate=1.0), "phases.decay-all.mask_rate"),
        (lambda p: p.update(profile="paper-huge"), "profile"),
        (lambda p: p["phases"]["decay-eng"].update(init_from=None), "phases.decay-eng.init_from"),
        (lambda p: p["phases"]["decay-eng"].update(init_from="decay-xl"), "phases.decay-eng.init_from"),
        (lambda p: p["phases"]["pretrain"].update(init_from="decay-eng"), "phases.pretrain.init_from"),
        (lambda p: p["phases"]["pretrain"]["data"].update(languages=["fra_Latn", "xxx_Zzzz"]),
         "phases.pretrain.data.languages"),
        (lambda p: p["phases"]["pretrain"]["data"].update(languages=100000), "phases.pretrain.data.languages"),
        (lambda p: p["merge"].update(base="nope"), "merge.base"),
        (lambda p: p["model"].update(num_attention_heads=5), "model"),
        (lambda p: p["train"].update(num_workers=0), "train.num_workers"),
    ],
)
def test_bad_params_name_the_key(edit, key, raw_params):
    edit(raw_params)
    message = _error(raw_params)
    assert key in message, message


def test_unknown_key_is_rejected(raw_params):
    raw_params["phases"]["pretrain"]["lr"]["peek"] = 1e-3
    assert "phases.pretrain.lr.peek" in _error(raw_params)


def test_error_shows_the_value(raw_params):
    raw_params["phases"]["pretrain"]["lr"]["peak"] = -0.5
    assert "-0.5" in _error(raw_params)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_profile_overlays_only_the_keys_it_sets(raw_params):
    raw_params["profile"] = "micro"
    cfg = parse_config(raw_params)
    assert cfg.model.hidden_size == 32  # from micro.yaml
    assert cfg.phases["pretrain"].mask_rate == raw_params["phases"]["pretrain"]["mask_rate"]  # from params.yaml
