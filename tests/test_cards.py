"""Model cards: every checkpoint folder gets a README.md that huggingface_hub's own parser
reads, with the run's languages (ISO codes from the mix manifests), the phases the model went
through and its held-out loss as a model-index result."""

from __future__ import annotations

import pytest

from mmbert.cards import iso_code, read_lineage, write_merge_card, write_phase_card


def test_iso_codes():
    assert [iso_code(x) for x in ("fra_Latn", "arb_Arab", "cmn_Hani", "nhd_Latn", "code")] == [
        "fr", "ar", "zh", "nhd", None]


@pytest.fixture()
def folders(micro, tmp_path):
    from mmbert.modeling import build_config, new_model
    from mmbert.tokenizer import load_tokenizer

    cfg, out = micro
    model = new_model(build_config(cfg.model, len(load_tokenizer(out / "tokenizer"))), seed=0)
    made = {}
    for name in ("pretrain", "midtrain", "merged"):
        model.save_pretrained(tmp_path / name)
        made[name] = tmp_path / name
    return cfg, out, made


def test_phase_cards_carry_their_lineage_languages_and_loss(folders):
    from huggingface_hub import ModelCard

    from mmbert.io import read_json

    cfg, out, made = folders
    write_phase_card(cfg, "pretrain", {"heldout_loss": 6.54321, "steps": 10, "tokens_per_second": 1234.5}, None,
                     made["pretrain"])
    write_phase_card(cfg, "midtrain", {"heldout_loss": 5.4321, "steps": 7}, made["pretrain"], made["midtrain"])
    card = ModelCard.load(made["midtrain"] / "README.md")
    pretrain = set(read_json(out / "mix" / "pretrain" / "manifest.json")["per_language"])
    midtrain = set(read_json(out / "mix" / "midtrain" / "manifest.json")["per_language"])
    assert set(card.data.language) == {iso_code(lang) for lang in pretrain | midtrain} - {None}
    assert card.data.pipeline_tag == "fill-mask" and card.data.license == "apache-2.0"
    result = card.data.eval_results[0]
    assert (result.metric_type, result.metric_value, result.task_type) == ("loss", 5.4321, "fill-mask")
    assert [r["phase"] for r in read_lineage(made["midtrain"])] == ["pretrain", "midtrain"]
    assert "| pretrain | " in card.text and "| midtrain | " in card.text and "1,234" in card.text
    merged = made["merged"]
    write_merge_card(cfg, [made["midtrain"], made["pretrain"]], 5.0, merged)
    card = ModelCard.load(merged / "README.md")
    assert card.data.eval_results[0].metric_value == 5.0
    assert [r["phase"] for r in read_lineage(merged)] == ["pretrain", "midtrain"]
