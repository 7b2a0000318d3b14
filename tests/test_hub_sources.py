"""Hub sources on local copies in each dataset's exact layout: the readers return exactly the
written documents, a budget plans only the files it needs, a phase's tokens are split
between sources and languages as configured, a hub phase mixes end to end on Ray, and
without a copy offline the error names the dataset and the setting, before any work."""

from __future__ import annotations

import argparse
import math
import shutil
import time

import pytest

from hub_fixtures import write_dclm, write_dolma_like, write_fineweb2, write_megawika, write_prolong
from mmbert.config import ConfigError, parse_config
from mmbert.corpus.hub_catalog import CATALOG
from mmbert.corpus.hub_sources import SourceUnavailable, hub_reachable, hub_source
from mmbert.io import read_json
from mmbert.mixing.hub_budget import hub_budgets
from mmbert.mixing.sizes import fineweb2_tokens


UNPINNED = {name: "e" * 40 for name, spec in CATALOG.items() if spec.revision is None}


def documents(name, root, subsets=None, budget=None, detokenizer=None):
    source = hub_source(name, UNPINNED, str(root), subsets, budget_tokens=budget, detokenizer=detokenizer)
    return [(d.lang, d.source, d.text) for d in source.documents()]


def test_fineweb2_parquet_reads_every_document_of_a_subset_in_order(tmp_path):
    written = write_fineweb2(tmp_path, "tir_Ethi", files=2, rows=4)
    assert documents("fineweb2", tmp_path, ["tir_Ethi"]) == [
        ("tir_Ethi", "fineweb2", text) for file in written for text in file]


@pytest.mark.parametrize("name, lang", [("dolmino-dclm", "eng_Latn"), ("dolmino-flan", "eng_Latn"),
                                        ("dolmino-math", "eng_Latn"), ("starcoder", "code"), ("arxiv", "eng_Latn"),
                                        ("pes2o", "eng_Latn"), ("tulu-flan", "eng_Latn"), ("books", "eng_Latn"),
                                        ("stackexchange", "eng_Latn"), ("dolmino-stackexchange", "eng_Latn"),
                                        ("dolmino-pes2o", "eng_Latn")])
def test_dolma_json_lines_read_exactly_the_written_documents(tmp_path, name, lang):
    written = write_dolma_like(tmp_path, name, lang, files=2, rows=3)
    assert documents(name, tmp_path) == [(lang, name, text) for file in written for text in file]


def test_dclm_zstd_json_lines_without_ids(tmp_path):
    written = write_dclm(tmp_path, files=2, rows=5)
    assert documents("dclm", tmp_path) == [("eng_Latn", "dclm", t) for file in written for t in file]


def test_megawika_reads_per_language_files_and_knows_which_languages_it_has(tmp_path):
    written = write_megawika(tmp_path, "fao_Latn", rows=3)
    assert documents("megawika", tmp_path, ["fao_Latn"]) == [("fao_Latn", "megawika", t) for t in written[0]]
    source = hub_source("megawika", UNPINNED, str(tmp_path), ["fao_Latn", "tir_Ethi"])
    assert source.present(["fao_Latn", "tir_Ethi"]) == ["fao_Latn"]


def test_prolong_token_ids_are_detokenized_with_the_configured_tokenizer(micro, tmp_path):
    from mmbert.tokenizer import load_tokenizer

    _, out = micro
    tokenizer = load_tokenizer(out / "tokenizer")
    written = write_prolong(tmp_path, "prolong-textbooks", tokenizer, rows=12)
    got = [text for _, _, text in documents("prolong-textbooks", tmp_path, detokenizer=str(out / "tokenizer"))]
    assert got == [tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in written]
    assert len(hub_source("prolong-textbooks", UNPINNED, str(tmp_path)).listing("eng_Latn")) > 1  # shards, no index
    with pytest.raises(ValueError, match="corpus.hub.detokenizer"):
        documents("prolong-textbooks", tmp_path)


def test_a_budget_plans_only_the_files_it_needs(tmp_path):
    write_fineweb2(tmp_path, "fao_Latn", files=4, rows=50)
    source = hub_source("fineweb2", {}, str(tmp_path), ["fao_Latn"])
    files = source.listing("fao_Latn")
    per_file = files[0].size * source.spec.tokens_per_byte
    assert [f.path for f in source.plan("fao_Latn", int(1.5 * per_file))] == [
        "data/fao_Latn/train/000_00000.parquet", "data/fao_Latn/train/000_00001.parquet"]
    assert len(source.plan("fao_Latn", int(1.5 * per_file), margin=1.5)) == 3
    assert source.plan("fao_Latn", 10**12) == files  # too little data: everything, then upsampled


def test_the_phase_budget_is_split_by_source_share_then_by_temperature():
    raw = _hub_phase_raw({"fineweb2": 0.6, "dclm": 0.3, "starcoder": 0.1})
    data = parse_config(raw).phases["pretrain"].data
    budgets = hub_budgets(data, ["eng_Latn", "code", "fao_Latn", "tir_Ethi"], "fineweb2").tokens
    fao, tir = fineweb2_tokens()["fao_Latn"], fineweb2_tokens()["tir_Ethi"]
    p_fao = fao**0.5 / (fao**0.5 + tir**0.5)
    assert budgets == {("dclm", "eng_Latn"): 300_000, ("starcoder", "code"): 100_000,
                       ("fineweb2", "fao_Latn"): round(600_000 * p_fao), ("fineweb2", "tir_Ethi"): round(600_000 * (1 - p_fao))}
    # a pinned language takes its share; its sources keep their ratio, the rest fill the remainder
    raw["phases"]["pretrain"]["data"]["pinned_shares"] = {"eng_Latn": 0.5}
    pinned = hub_budgets(parse_config(raw).phases["pretrain"].data, ["eng_Latn", "code", "fao_Latn", "tir_Ethi"],
                         "fineweb2").tokens
    assert pinned[("dclm", "eng_Latn")] == 500_000
    assert pinned[("starcoder", "code")] == round(0.1 * 0.5 / 0.7 * 1_000_000)
    assert pinned[("fineweb2", "fao_Latn")] == round(0.6 * p_fao * 0.5 / 0.7 * 1_000_000)


def test_a_language_no_source_provides_is_refused_before_any_work():
    raw = _hub_phase_raw({"fineweb2": 1.0})
    with pytest.raises(ValueError, match=r"\['eng_Latn'\] are provided by no source"):
        hub_budgets(parse_config(raw).phases["pretrain"].data, ["eng_Latn", "fao_Latn"], "fineweb2")


def test_sources_must_be_known_and_sum_to_one():
    from mmbert.corpus.catalog import check_corpus_fits

    with pytest.raises(ConfigError, match=r"phases.pretrain.data.sources names \['fineweb3'\]"):
        check_corpus_fits(parse_config(_hub_phase_raw({"fineweb3": 1.0})))
    raw = _hub_phase_raw({"fineweb2": 1.0})
    raw["corpus"]["hub"]["revisions"] = {"dlcm": "a" * 40}
    with pytest.raises(ConfigError, match=r"corpus.hub.revisions names \['dlcm'\]"):
        check_corpus_fits(parse_config(raw))
    with pytest.raises(ConfigError, match="sources shares sum to 0.9000"):
        parse_config(_hub_phase_raw({"fineweb2": 0.6, "dclm": 0.3}))


def test_a_source_without_a_pinned_revision_needs_one_in_params():
    with pytest.raises(ValueError, match="set corpus.hub.revisions.megawika"):
        hub_source("megawika", {}, None)
    assert hub_source("megawika", {"megawika": "a" * 40}, None).revision == "a" * 40
    assert hub_source("dclm", {"dclm": "a" * 40}, None).revision == "a" * 40  # params over the catalog's pin


def test_offline_without_a_copy_a_hub_phase_fails_at_once_naming_dataset_and_setting(tmp_path, monkeypatch):
    from mmbert.corpus.catalog import check_corpus_fits

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_print_this_token")
    hub_reachable.cache_clear()
    raw = _hub_phase_raw({"fineweb2": 0.9, "dclm": 0.1})
    raw["phases"]["pretrain"]["data"]["languages"] = ["eng_Latn", "fao_Latn", "tir_Ethi"]
    raw["corpus"]["hub"]["revisions"] = {"dclm": "b" * 40}
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"dataset HuggingFaceFW/fineweb-2 at af9c1333.*runtime.hub_dir.*"
                                          r"dataset mlfoundations/dclm-baseline-1.0 at b{40}") as refused:
        check_corpus_fits(parse_config(raw))
    assert "hf_do_not_print_this_token" not in str(refused.value)  # the token is the hub's business only
    with pytest.raises(SourceUnavailable, match="runtime.hub_dir"):
        hub_source("fineweb2", {}, str(tmp_path), ["fao_Latn"]).listing("fao_Latn")
    assert time.perf_counter() - started < 5
    hub_reachable.cache_clear()


@pytest.mark.parametrize("preset", ["paper-small", "paper-base"])
def test_paper_presets_validate_with_the_papers_languages_and_sources(preset, tmp_path):
    from mmbert.corpus.catalog import check_corpus_fits
    from mmbert.preset import preset_values

    raw = preset_values(preset)
    for spec in CATALOG.values():
        (tmp_path / spec.repo).mkdir(parents=True, exist_ok=True)
    raw["runtime"]["hub_dir"] = str(tmp_path)
    raw["corpus"]["hub"]["revisions"] = {name: "c" * 40 for name, spec in CATALOG.items() if spec.revision is None}
    cfg = parse_config(raw)
    check_corpus_fits(cfg)
    assert set(cfg.phases["pretrain"].data.sources) >= {"fineweb2", "dclm", "starcoder"}
    assert all(math.isclose(sum(p.data.sources.values()), 1, abs_tol=1e-3) for p in cfg.phases.values())


def _hub_phase_raw(sources: dict[str, float]) -> dict:
    from mmbert.preset import preset_values

    raw = preset_values("micro")
    data = raw["phases"]["pretrain"]["data"]
    data.update({"sources": sources, "languages": ["eng_Latn", "code", "fao_Latn", "tir_Ethi"][: 4],
                 "temperature": 0.5, "tokens": 1_000_000, "pinned_shares": {}})
    raw["phases"]["pretrain"]["lr"]["warmup_tokens"] = 0
    raw["phases"]["pretrain"]["batch"].update({"warmup": "none", "warmup_tokens": 0})
    return raw


def test_a_hub_phase_mixes_on_ray_reading_only_its_planned_files(micro, tmp_path, caplog):
    from mmbert import mix

    _, out = micro
    hub = tmp_path / "hub"
    fao = write_fineweb2(hub, "fao_Latn", files=3, rows=40)
    write_fineweb2(hub, "tir_Ethi", files=3, rows=40)
    write_dclm(hub, files=3, rows=120)
    write_dolma_like(hub, "starcoder", "code", files=1, rows=40)
    run = tmp_path / "run"
    for part in ("corpus", "tokenizer"):
        shutil.copytree(out / part, run / part)
    raw = _hub_phase_raw({"fineweb2": 0.6, "dclm": 0.3, "starcoder": 0.1})
    raw["output_dir"] = str(run)
    raw["runtime"]["hub_dir"] = str(hub)
    raw["corpus"]["hub"]["plan_margin"] = 1.0
    raw["phases"]["pretrain"]["data"]["tokens"] = 6000
    cfg = parse_config(raw)
    with caplog.at_level("INFO", logger="mmbert.mix"):
        mix.main(cfg, argparse.Namespace(phase="pretrain"))
    manifest = read_json(run / "mix" / "pretrain" / "manifest.json")
    assert manifest["source"] == {"hub": {"fineweb2": 0.6, "dclm": 0.3, "starcoder": 0.1}}
    per_source = manifest["per_source"]
    assert set(per_source) == {"fineweb2:fao_Latn", "fineweb2:tir_Ethi", "dclm:eng_Latn", "starcoder:code"}
    assert per_source["dclm:eng_Latn"]["files"] == 1 < 3  # a small budget downloads one file of three
    longest = manifest["seq_len"]
    for row in per_source.values():  # each source's tokens track its budget within one chunk
        assert abs(row["tokens"] - row["budget"]) <= longest
    assert set(manifest["per_language"]) == {"fao_Latn", "tir_Ethi", "eng_Latn", "code"}
    assert "hub files planned" in caplog.text and "GB to download" in caplog.text
    from mmbert.train.data import PackedShards
    from mmbert.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(run / "tokenizer")
    reader = PackedShards(run / "mix" / "pretrain", cache=str(tmp_path / "cache"))
    decoded = " ".join(tokenizer.decode(reader.row(i)["input_ids"], skip_special_tokens=True) for i in range(len(reader)))
    assert fao[0][0].split()[0] in decoded and "fao_Latn 2-" not in decoded  # file 3 of fao was never read


def test_dolma_files_are_fetched_from_the_urls_its_repository_lists(tmp_path, monkeypatch):
    """Dolma v1.7 keeps its files at olmo-data.org and lists them in urls/v1_7.txt: here a
    loopback HTTP server plays that host; a finished file is not fetched again."""
    import dataclasses
    import functools
    import http.server
    import threading

    from huggingface_hub import constants

    from hub_fixtures import texts, write_json_lines
    from mmbert.corpus.hub_sources import HubSource

    served = tmp_path / "served"
    written = texts("code", 0, 5)
    write_json_lines(served / "starcoder" / "starcoder-0000.json.gz",
                     [{"id": f"s{i}", "text": t, "source": "starcoder"} for i, t in enumerate(written)])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_port}/"
    hub = tmp_path / "hub"
    (hub / "allenai" / "dolma" / "urls").mkdir(parents=True)
    (hub / "allenai" / "dolma" / "urls" / "v1_7.txt").write_text(
        f"{root}starcoder/starcoder-0000.json.gz\n{root}books/books-0000.json.gz\n")
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    spec = dataclasses.replace(CATALOG["starcoder"], url_root=root)
    try:
        source = HubSource(spec, spec.revision, str(hub))
        size = (served / "starcoder" / "starcoder-0000.json.gz").stat().st_size
        assert [(f.path, f.size) for f in source.listing("code")] == [("starcoder/starcoder-0000.json.gz", size)]
        assert [d.text for d in source.documents()] == written
    finally:
        server.shutdown()
    cached = HubSource(spec, spec.revision, str(hub)).fetch("starcoder/starcoder-0000.json.gz")  # server gone
    assert cached.stat().st_size == size and cached.is_relative_to(tmp_path / "hf")
