"""The mix stage's MDS output and the training reader: the official reader reads it, rows
keep document boundaries, the reader's order is exact under resume and stays within shard
blocks, a remote copy reads like the local one, and tokenization on Ray is deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mmbert.chunking import ChunkRule
from mmbert.io import read_json, write_json
from mmbert.mds import streaming_base
from mmbert.mixing.pack import segments
from mmbert.tokenizer import load_tokenizer, special_ids
from mmbert.train.data import PackedShards


def test_the_mix_is_an_mds_dataset_with_document_boundaries(micro, tmp_path):
    cfg, out = micro
    folder = out / "mix" / "pretrain"
    manifest = read_json(folder / "manifest.json")
    ids = special_ids(load_tokenizer(out / "tokenizer"))
    # streaming's own StreamingDataset, as a user of the official data would read it
    dataset = streaming_base().StreamingDataset(remote=str(folder), local=str(tmp_path / "cache"), shuffle=False,
                                                batch_size=1)
    assert len(dataset) == manifest["rows"]
    real = 0
    for sample in dataset:
        row, bounds = sample["input_ids"], sample["cu_seqlens"].tolist()
        assert row.dtype == np.uint16 and len(row) == manifest["seq_len"] and bounds[0] == 0
        for a, b in zip(bounds, bounds[1:]):
            assert row[a] == ids.cls and row[b - 1] == ids.sep and b - a >= 3
            assert ids.cls not in row[a + 1 : b - 1].tolist()
        assert (row[bounds[-1]:] == ids.pad).all()
        real += bounds[-1]
    assert real == manifest["tokens"]  # every sampled chunk is in exactly one row
    assert manifest["packing_efficiency"] == pytest.approx(real / (manifest["rows"] * manifest["seq_len"]))
    shares = {lang: row["share"] for lang, row in manifest["per_language"].items()}
    assert sum(shares.values()) == pytest.approx(1.0)


def test_a_remote_copy_reads_like_the_local_one(micro, tmp_path):
    cfg, out = micro
    folder = out / "mix" / "pretrain"
    local = PackedShards(folder, cache=str(tmp_path / "a"))
    remote = PackedShards(None, remote=str(folder), cache=str(tmp_path / "b"))
    for position in (0, 40, 10_000):
        assert (local.batch(position, 8, 1, 2, seed=3) == remote.batch(position, 8, 1, 2, seed=3)).all()
    assert sorted(p.name for p in (tmp_path / "b").iterdir())[0].startswith("mmbert-mds-")


def synthetic(folder: Path, rows: int, size_limit: int) -> Path:
    with streaming_base().MDSWriter(out=str(folder), columns={"input_ids": "ndarray:uint32", "cu_seqlens": "ndarray:int32"},
                                    compression=None, hashes=["sha1"], size_limit=size_limit) as writer:
        for i in range(rows):
            writer.write({"input_ids": np.full(8, i, np.uint32), "cu_seqlens": np.array([0, 8], np.int32)})
    write_json(folder / "manifest.json", {"seq_len": 8})
    return folder


def test_each_pass_visits_every_row_once_block_by_block(tmp_path):
    data = PackedShards(synthetic(tmp_path / "mds", rows=1000, size_limit=2000), block_rows=150)
    n, starts = len(data), data._shard_start
    assert n == 1000 and len(data._shard_rows) > 10
    two_passes = data.global_rows(0, 2 * n, seed=5)
    for one in (two_passes[:n], two_passes[n:]):
        assert sorted(one.tolist()) == list(range(n))
    assert not (two_passes[:n] == two_passes[n:]).all()  # a fresh order per pass
    # the first rows of a pass come from the shards of its first block only
    shard_of = np.searchsorted(starts, two_passes[:150], side="right") - 1
    assert 1 <= len(set(shard_of.tolist())) <= 150 // int(data._shard_rows.min()) + 1
    # a resumed reader asks for the same positions and gets the same rows, in any split
    pieces = [data.global_rows(a, b - a, seed=5) for a, b in [(0, 333), (333, 1500), (1500, 2000)]]
    assert (np.concatenate(pieces) == two_passes).all()
    # the workers' shares of a global batch partition it
    shares = [data.batch(700, 12, rank, 3, seed=5)[:, 0] for rank in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == sorted(two_passes[700:712].tolist())


def test_a_corrupt_local_shard_is_refused_when_first_read(tmp_path):
    folder = synthetic(tmp_path / "mds", rows=50, size_limit=1 << 20)
    shard = folder / "shard.00000.mds"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    reader = PackedShards(folder)
    with pytest.raises(ValueError, match="checksum"):
        reader.batch(0, 2, 0, 1, seed=0)


def test_segments_cut_the_draws_by_tokens():
    lengths = np.array([8, 8, 8, 8, 8, 8])  # 10 tokens each with [CLS] and [SEP]
    assert segments(lengths, 25) == [(0, 3), (3, 5), (5, 6)]
    assert segments(lengths, 1000) == [(0, 6)]


def _store_digest(folder: Path, languages: list[str]) -> str:
    """Every language's chunk lengths and tokens in order (parts are named at random)."""
    from mmbert.mixing.store import ChunkStore

    store, digest = ChunkStore(folder, np.dtype(np.uint16)), hashlib.sha256()
    for lang in languages:
        digest.update(lang.encode() + store.lengths(lang).tobytes() + store.tokens(lang).tobytes())
    return digest.hexdigest()


def test_the_chunk_store_finds_every_chunk_across_parts(tmp_path):
    from mmbert.mixing.store import ChunkStore, ChunkStoreWriter, write_part

    writer = ChunkStoreWriter(tmp_path, np.dtype(np.uint16))
    writer.add("a", [[1, 2, 3], [4]])  # driver-side chunks are written as a part before the next part
    # a part as an actor writes it: language b's two chunks, then a's one
    writer.add_part(write_part(tmp_path, np.array([5, 6, 7, 8, 9, 10], np.uint16)), ["b", "a"],
                    np.array([2, 1]), np.array([4, 2]), np.array([1, 3, 2], np.int32))
    writer.add("a", [[11, 12]])
    assert writer.close() == {"a": 8, "b": 4}
    store = ChunkStore(tmp_path, np.dtype(np.uint16))
    assert store.lengths("a").tolist() == [3, 1, 2, 2] and store.lengths("b").tolist() == [1, 3]
    assert store.tokens("a").tolist() == [1, 2, 3, 4, 9, 10, 11, 12]
    assert store.tokens("b").tolist() == [5, 6, 7, 8]
    parts, offsets = store.locate("a", np.array([3, 0, 2]))
    assert offsets.tolist() == [0, 0, 4] and parts[1] == 0 and parts[2] == 1 and parts[0] == 2
    assert len(store.parts()) == 3


def test_tokenization_on_ray_does_not_depend_on_actors_or_slices(micro, tmp_path):
    from mmbert.mixing.store import ChunkStoreWriter
    from mmbert.mixing.tokenize import jsonl_slices, tokenize_corpus

    cfg, out = micro
    rule = ChunkRule(30, 8, 2)
    languages = ["eng_Latn", "fra_Latn", "deu_Latn"]
    # 100 documents of each of the three languages among a sample of the others (which must be
    # skipped): small enough that 3000-byte slices number tens, not thousands
    kept: dict[str, int] = {}
    corpus = tmp_path / "train.jsonl"
    with corpus.open("w") as sample:
        for i, line in enumerate((out / "corpus" / "train.jsonl").read_text().splitlines(keepends=True)):
            lang = json.loads(line)["lang"]
            kept[lang] = kept.get(lang, 0) + 1
            if (lang in languages and kept[lang] <= 100) or i % 200 == 0:
                sample.write(line)
    small = 3000  # bytes: many slices, each cut at a line's end
    slices = jsonl_slices(corpus, small)
    assert len(slices) > 10 and slices[-1]["end"] == corpus.stat().st_size
    data = corpus.read_bytes()
    assert all(data[s["end"] - 1:s["end"]] == b"\n" for s in slices)
    digests = []
    for actors, slice_bytes in ((1, 1 << 16), (2, 1 << 16), (2, small)):  # 64 KiB: several slices per actor
        store = tmp_path / f"store{actors}-{slice_bytes}"
        totals = tokenize_corpus([corpus], languages, out / "tokenizer", rule,
                                 ChunkStoreWriter(store, np.dtype(np.uint16)), actors=actors, slice_bytes=slice_bytes)
        assert set(totals) == set(languages) and min(totals.values()) > 0
        digests.append(_store_digest(store, languages))
    assert digests[0] == digests[1] == digests[2]


def test_a_corpus_line_that_is_not_json_is_named(tmp_path):
    from mmbert.mixing.tokenize import read_slice

    corpus = tmp_path / "train.jsonl"
    corpus.write_text('{"lang": "eng_Latn", "text": "fine"}\n{"lang": "eng_Latn", "text": broken}\n')
    table = read_slice(str(corpus), 0, 37)
    assert table.column("text").to_pylist() == ["fine"]
    with pytest.raises(ValueError, match=r"train\.jsonl, bytes 0-\d+: not JSON lines"):
        read_slice(str(corpus), 0, corpus.stat().st_size)


def test_an_empty_corpus_is_refused_before_ray_starts(tmp_path):
    from mmbert.mixing.store import ChunkStoreWriter
    from mmbert.mixing.tokenize import tokenize_corpus

    corpus = tmp_path / "train.jsonl"
    corpus.write_text("")
    with pytest.raises(ValueError, match=r"train\.jsonl: the corpus is empty"):
        tokenize_corpus([corpus], ["eng_Latn"], tmp_path / "tokenizer", ChunkRule(30, 8, 2),
                        ChunkStoreWriter(tmp_path / "store", np.dtype(np.uint16)), actors=1)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def released_fixture(folder: Path, docs: list[np.ndarray]) -> Path:
    """A set in the released mixes' layout: MDS, {input_ids: uint32[], id: str}, zstd shards."""
    with streaming_base().MDSWriter(out=str(folder), columns={"input_ids": "ndarray:uint32", "id": "str"},
                                    compression="zstd", hashes=["sha1", "xxh64"], size_limit=4000) as writer:
        for i, ids in enumerate(docs):
            writer.write({"input_ids": ids.astype(np.uint32), "id": f"doc-{i}"})
    return folder


def test_a_phase_trains_on_a_released_mix_taking_only_its_budget(micro, tmp_path):
    import argparse
    import shutil

    from mmbert import mix
    from helpers import micro_config

    _, out = micro
    rng = np.random.default_rng(0)
    docs = [rng.integers(5, 1000, size=int(n)) for n in rng.integers(20, 300, size=400)]
    released = released_fixture(tmp_path / "released", docs)
    shards = len(read_json(released / "index.json")["shards"])
    run = tmp_path / "run"
    for part in ("corpus", "tokenizer"):
        shutil.copytree(out / part, run / part)
    cfg = with_released(micro_config(run), str(released), tokens=6000)
    mix.main(cfg, argparse.Namespace(phase="pretrain"))
    manifest = read_json(run / "mix" / "pretrain" / "manifest.json")
    assert manifest["source"] == {"released": [str(released)]}
    seq_len = manifest["seq_len"]
    # the chunks are the released documents in order, cut by the chunk rule, nothing else
    taken, expected = 0, []
    for ids in docs:
        pieces = chunk_document_rule(ids, seq_len - 2, cfg)
        expected += [p.tolist() for p in pieces]
        taken += sum(len(p) + 2 for p in pieces)
        if taken >= 6000:
            break
    assert manifest["tokens"] == taken >= 6000  # whole documents, stopping once the budget is met
    reader = PackedShards(run / "mix" / "pretrain", cache=str(tmp_path / "cache"))
    found = []
    for i in range(len(reader)):
        row = reader.row(i)
        bounds = row["cu_seqlens"].tolist()
        found += [row["input_ids"][a + 1 : b - 1].tolist() for a, b in zip(bounds, bounds[1:])]
    assert sorted(found) == sorted(expected)
    assert len(expected) < len(docs) and shards > 3


def with_released(cfg, released: str, tokens: int):
    phase = cfg.phases["pretrain"]
    data = phase.data.model_copy(update={"released": [released], "tokens": tokens})
    return cfg.model_copy(update={"phases": {**cfg.phases, "pretrain": phase.model_copy(update={"data": data})}})


def chunk_document_rule(ids: np.ndarray, max_tokens: int, cfg) -> list[np.ndarray]:
    from mmbert.chunking import chunk_document

    return chunk_document(ids, ChunkRule(max_tokens, cfg.mix.chunk_min_tokens, cfg.mix.chunk_drop_below))


def test_released_ids_outside_the_tokenizer_are_refused(micro, tmp_path):
    import argparse
    import shutil

    from mmbert import mix
    from helpers import micro_config

    _, out = micro
    released = released_fixture(tmp_path / "released", [np.array([5, 6, 250_000])])
    run = tmp_path / "run"
    for part in ("corpus", "tokenizer"):
        shutil.copytree(out / part, run / part)
    cfg = with_released(micro_config(run), str(released), tokens=1000)
    with pytest.raises(ValueError, match="Gemma 2"):
        mix.main(cfg, argparse.Namespace(phase="pretrain"))
    assert not (run / "mix" / "pretrain").exists()  # nothing half-written


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_mix_is_byte_identical_when_rebuilt(micro, tmp_path):
    """DVC re-runs downstream training only if a mix changed: a rebuild must not differ."""
    import argparse
    import shutil

    from mmbert import mix
    from helpers import micro_config

    _, out = micro
    run = tmp_path / "run"
    for part in ("corpus", "tokenizer"):
        shutil.copytree(out / part, run / part)
    cfg = micro_config(run)
    digests = []
    for _ in range(2):
        mix.main(cfg, argparse.Namespace(phase="decay-eng"))
        digests.append(_tree_digest(run / "mix" / "decay-eng"))
    assert digests[0] == digests[1]


def test_a_non_leader_rank_reads_a_remote_without_waiting_for_a_leader(tmp_path):
    """Ranks of a node share the cache; one that streaming would call a follower (LOCAL_RANK=1)
    must not wait for a leader's index download (it once deadlocked training on a file lock)."""
    import os
    import subprocess
    import sys

    folder = synthetic(tmp_path / "mds", rows=20, size_limit=1 << 20)
    code = ("from mmbert.train.data import PackedShards; import sys; "
            f"d = PackedShards(None, remote={str(folder)!r}, cache={str(tmp_path / 'cache')!r}); "
            "print(len(d), d.batch(0, 4, 0, 1, seed=0)[:, 0].tolist())")
    env = {**os.environ, "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "RANK": "1", "WORLD_SIZE": "2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("20 ")
