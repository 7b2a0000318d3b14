"""Corpus sources on the Hugging Face hub, behind the same `Source` interface as the embedded
ones: FineWeb2 per language subset, and any parquet text dataset (DCLM's parquet copy, ...).

A source reads only what its budget needs: files are taken one at a time, in the
repository's order, and reading stops once a subset has its characters. Each file is
fetched with `hf_hub_download` at the pinned revision into the hub cache, which resumes a
cut download and skips a finished one, so a killed run continues where it stopped. A local
copy (`data_dir/<repo id>/<path in the repo>`) is read instead when it exists. Gated
repositories read the token from HF_TOKEN (huggingface_hub's own variable), never logged.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmbert.corpus.sources import Document

log = logging.getLogger("mmbert.corpus")
FINEWEB2 = "HuggingFaceFW/fineweb-2"
# Pinned in public code that reads FineWeb2 (e.g. marin's fineweb2 evaluation); its layout is
# data/<subset>/{train,test}/*.parquet.
FINEWEB2_REVISION = "af9c13333eb981300149d5ca60a8e9d659b276b9"
READ_BATCH_ROWS = 1024


class SourceUnavailable(RuntimeError):
    """A hub source has neither a local copy nor a reachable hub."""


@dataclass
class ParquetTextSource:
    """Documents from parquet files of a hub dataset, one folder pattern per language."""

    name: str
    repo: str
    revision: str
    pattern: str  # path inside the repo, with {subset}: 'data/{subset}/train/*.parquet'
    subsets: list[str]
    text_column: str = "text"
    id_column: str | None = "id"
    budget_chars: int | None = None  # per subset; None: everything
    data_dir: str | None = None
    files_read: dict[str, list[str]] = field(default_factory=dict)

    def languages(self) -> set[str]:
        return set(self.subsets)

    def documents(self) -> Iterator[Document]:
        for subset in self.subsets:
            yield from self._subset_documents(subset)

    def _subset_documents(self, subset: str) -> Iterator[Document]:
        taken = 0
        self.files_read[subset] = []
        for path in self.files(subset):
            self.files_read[subset].append(path)
            for row, text, key in self._rows(path):
                yield Document(subset, self.name, key or f"{subset}:{Path(path).name}:{row}", text)
                taken += len(text)
                if self.budget_chars is not None and taken >= self.budget_chars:
                    log.info("%s %s: %d characters from %d file(s), budget met", self.name, subset, taken,
                             len(self.files_read[subset]))
                    return
        log.info("%s %s: %d characters, all %d file(s)", self.name, subset, taken, len(self.files_read[subset]))

    def files(self, subset: str) -> list[str]:
        """The subset's files in the repository's order: local paths, or repo paths to fetch."""
        pattern = self.pattern.format(subset=subset)
        if self.data_dir and (local := sorted((Path(self.data_dir) / self.repo).glob(pattern))):
            return [str(p) for p in local]
        listing = self._hub_listing()
        found = sorted(p for p in listing if fnmatch.fnmatch(p, pattern))
        if not found:
            raise SourceUnavailable(f"{self.repo}@{self.revision}: no files match {pattern!r} (subset {subset!r})")
        return found

    def _hub_listing(self) -> list[str]:
        from huggingface_hub import list_repo_files

        try:
            return list_repo_files(self.repo, repo_type="dataset", revision=self.revision)
        except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated without token: all end here
            where = f"{self.data_dir}/{self.repo}/{self.pattern}" if self.data_dir else "a local copy (data_dir)"
            raise SourceUnavailable(
                f"{self.name}: {self.repo} at {self.revision} cannot be listed ({type(exc).__name__}) and there is no "
                f"local copy at {where}; allow access to the hub (HF_TOKEN for gated sets) or download it with "
                f"`hf download --repo-type dataset {self.repo} --revision {self.revision} --local-dir "
                f"<data_dir>/{self.repo}`") from None

    def _local(self, path: str) -> str:
        if Path(path).is_file():
            return path
        from huggingface_hub import hf_hub_download

        return hf_hub_download(self.repo, path, repo_type="dataset", revision=self.revision)

    def _rows(self, path: str) -> Iterator[tuple[int, str, str | None]]:
        import pyarrow.parquet as pq

        columns = [self.text_column] + ([self.id_column] if self.id_column else [])
        row = 0
        for batch in pq.ParquetFile(self._local(path)).iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
            texts = batch.column(self.text_column).to_pylist()
            keys = batch.column(self.id_column).to_pylist() if self.id_column else [None] * len(texts)
            for text, key in zip(texts, keys):
                if text:
                    yield row, text, key
                row += 1


def fineweb2(subsets: list[str], budget_chars: int | None, data_dir: str | None,
             revision: str = FINEWEB2_REVISION) -> ParquetTextSource:
    return ParquetTextSource("fineweb2", FINEWEB2, revision, "data/{subset}/train/*.parquet", subsets,
                             budget_chars=budget_chars, data_dir=data_dir)
