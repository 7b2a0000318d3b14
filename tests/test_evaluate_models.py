"""Evaluation code paths on small real checkpoints: held-out loss, mteb bitext, language ID."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import build_inputs, micro_config
from mmbert.config import BitextConfig, LangIdConfig
from mmbert.evaluate.mlm_loss import heldout_loss, heldout_rows, row_documents
from mmbert.modeling import SpecialIds, build_config, new_model
from mmbert.tokenizer import load_tokenizer, special_ids


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    cfg = micro_config(out)
    build_inputs(cfg, [])
    tokenizer = load_tokenizer(out / "tokenizer")
    model = new_model(build_config(cfg.model, len(tokenizer), special=special_ids(tokenizer)), seed=0)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(str(out / "model"))
    return cfg, out


def test_heldout_loss_is_deterministic_and_near_log_vocab_for_random_weights(checkpoint):
    from mmbert.modeling import load_model

    cfg, out = checkpoint
    tokenizer = load_tokenizer(out / "tokenizer")
    rows = heldout_rows(out / "corpus", tokenizer, 64, languages={"fra_Latn", "rus_Cyrl", "eng_Latn"})
    model = load_model(out / "model")
    a = heldout_loss(model, rows, rate=0.15, ids=special_ids(tokenizer), seed=0, batch_size=16)
    b = heldout_loss(model, rows, rate=0.15, ids=special_ids(tokenizer), seed=0, batch_size=7)
    assert a.keys() == {"fra_Latn", "rus_Cyrl", "eng_Latn"}
    for lang in a:
        assert a[lang]["loss"] == pytest.approx(b[lang]["loss"], rel=1e-5)
        assert a[lang]["loss"] == pytest.approx(np.log(len(tokenizer)), abs=0.5)


def test_heldout_rows_split_into_documents_at_each_sep():
    ids = SpecialIds()
    row = torch.tensor([9, 9, ids.sep, ids.cls, 7, 7, 7, ids.sep, ids.cls, 8, ids.pad, ids.pad])
    assert row_documents(row, ids) == [0, 3, 8, 10]
    assert row_documents(torch.tensor([ids.cls, 5, 6, ids.sep]), ids) == [0, 4]


def test_heldout_loss_reads_each_document_on_its_own(checkpoint):
    """The held-out loss equals transformers' model run on every document piece of every row
    alone: documents packed in a row do not see each other."""
    from mmbert.evaluate.mlm_loss import masked_batches
    from mmbert.modeling import load_model

    cfg, out = checkpoint
    tokenizer = load_tokenizer(out / "tokenizer")
    ids = special_ids(tokenizer)
    rows = heldout_rows(out / "corpus", tokenizer, 64, languages={"fra_Latn"})
    model = load_model(out / "model").eval()
    with torch.no_grad():  # weights far from the init's near-uniform attention, so context shows
        gen = torch.Generator().manual_seed(0)
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0, 0.2, generator=gen)
    got = heldout_loss(model, rows, rate=0.15, ids=ids, seed=0, batch_size=5)["fra_Latn"]
    x, y, _ = masked_batches(rows, 0.15, ids, model.config.vocab_size, 0)
    total, count = 0.0, 0
    assert max(len(row_documents(row, ids)) for row in x) > 3, "rows must pack several documents"
    with torch.no_grad():
        for row, labels in zip(x, y):
            cu = row_documents(row, ids)
            for a, b in zip(cu[:-1], cu[1:]):
                piece, target = row[a:b][None], labels[a:b]
                logits = model(input_ids=piece, attention_mask=torch.ones_like(piece)).logits[0]
                keep = target != -100
                total += float(torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum"))
                count += int(keep.sum())
    assert got["predictions"] == count
    assert got["loss"] == pytest.approx(total / count, rel=1e-5)


def test_bitext_through_mteb_finds_identical_sentences(checkpoint):
    """Identical sentences embed identically, so retrieval must be perfect: a test that fails
    if the task, its data or the pooling are wired wrongly."""
    from mmbert.evaluate.bitext import bitext_scores

    cfg, out = checkpoint
    sentences = [f"Sentence number {i} about {w}" for i, w in enumerate(["cats", "trains", "rain", "tea", "maps", "ice"])]
    pairs = {"fra_Latn": [(s, s) for s in sentences], "deu_Latn": [(s, s) for s in sentences[:4]]}
    scores = bitext_scores(out / "model", pairs, BitextConfig(languages=2, max_pairs=10, max_length=32))
    assert scores["per_language"] == {"fra_Latn": 1.0, "deu_Latn": 1.0}
    assert scores["pairs"] == 10


def test_parallel_pairs_come_from_held_out_keys(checkpoint):
    from mmbert.evaluate.bitext import parallel_pairs
    from mmbert.io import read_jsonl

    cfg, out = checkpoint
    pairs = parallel_pairs(out / "corpus", BitextConfig(languages=3, max_pairs=20, max_length=32),
                           ["eng_Latn", "fra_Latn", "rus_Cyrl", "pol_Latn"])
    assert list(pairs) == ["fra_Latn", "rus_Cyrl", "pol_Latn"]
    held = {(r["lang"], r["text"]) for r in read_jsonl(out / "corpus" / "eval.jsonl")}
    for lang, items in pairs.items():
        assert len(items) == 20
        assert all(("eng_Latn", en) in held and (lang, other) in held for en, other in items)


def test_langid_learns_to_tell_scripts_apart(checkpoint):
    from mmbert.evaluate.langid import finetune_and_score, langid_data

    cfg, out = checkpoint
    data = langid_data(out / "corpus", ["rus_Cyrl", "ell_Grek"], seed=0)
    torch.manual_seed(0)
    result = finetune_and_score(out / "model", data, 2, LangIdConfig(languages=2, epochs=3, lr=3e-3, batch_size=16,
                                                                     max_length=32), seed=0)
    assert result["accuracy"] > 0.9, result
