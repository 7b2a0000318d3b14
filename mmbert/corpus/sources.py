"""Corpus sources behind one interface: `languages()` is cheap (for validating params
before any stage runs); `documents()` yields the text. Hub sources (FineWeb2, DCLM, ...)
plug in by implementing the same two methods."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

from mmbert.corpus.langcodes import ENGLISH, detect_script, normalize

# After a sentence terminator followed by a space or a line end; CJK full stops need no space.
_SENTENCE_END = re.compile(r"(?<=[.!?;\u0964\u0965\u1362\u1367\u061f\u06d4])\s+|(?<=[\u3002\uff01\uff1f])|\n+")


@dataclass(frozen=True)
class Document:
    """One unit of text. `key` decides the held-out split; parallel text shares keys."""

    lang: str
    source: str
    key: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"lang": self.lang, "source": self.source, "key": self.key, "text": self.text}


class Source(Protocol):
    name: str

    def languages(self) -> set[str]: ...

    def documents(self) -> Iterator[Document]: ...


class UDHRSource:
    """UDHR excerpts from gflanguages' sample texts (~750 language/script pairs).

    Most samples are Article 1 repeated at several lengths, so a document is one sentence:
    sentences are de-duplicated and any sentence contained in a longer one (a truncation
    made for a font specimen) is dropped.
    """

    name = "udhr"
    FIELDS = ("specimen_16", "specimen_21", "specimen_32", "specimen_36", "specimen_48", "tester", "styles")

    @cached_property
    def _records(self) -> dict[str, object]:
        from gflanguages import LoadLanguages

        records = {}
        for record in LoadLanguages().values():
            if not record.HasField("sample_text"):
                continue
            try:
                records[normalize(record.language, record.script)] = record
            except ValueError:
                continue  # a variety without an ISO 639-3 code (e.g. 'fr-gallo'): no FineWeb2 name
        return records

    def languages(self) -> set[str]:
        return set(self._records)

    def documents(self) -> Iterator[Document]:
        for lang, record in sorted(self._records.items()):
            for sentence in self.sentences(record.sample_text):
                yield Document(lang, self.name, f"{lang}:{sentence}", sentence)

    def sentences(self, sample: object) -> list[str]:
        found = {
            sentence.strip()
            for field in self.FIELDS
            for sentence in _SENTENCE_END.split(getattr(sample, field))
            if len(sentence.strip()) >= 8
        }
        return sorted(s for s in found if not any(s != other and s in other for other in found))


class DjangoSource:
    """Django's gettext catalogues: ~90 languages of UI strings, keyed by their English
    msgid, so the same key across languages is parallel text (English included)."""

    name = "django"

    @cached_property
    def _catalogues(self) -> dict[str, list[Path]]:
        """Normalized language → the .po files of the locale chosen for it.

        Regional variants (pt_BR, es_AR, ...) map to the same code; the locale with the
        largest catalogues (in bytes: no parsing, this runs to validate params) wins, so no
        language gets near-duplicate text twice.
        """
        import django

        root = Path(django.__file__).parent
        by_locale: dict[str, list[Path]] = {}
        for po in sorted(root.glob("**/locale/*/LC_MESSAGES/django.po")):
            by_locale.setdefault(po.parts[-3], []).append(po)
        chosen: dict[str, tuple[int, str]] = {}
        for locale, files in by_locale.items():
            if locale.split("_")[0] == "en":
                continue  # English is the msgid side of every catalogue
            sample = _msgstr_sample(files[0])
            if not sample:
                continue
            lang = self._code(locale, sample)
            size = sum(f.stat().st_size for f in files)
            if size > chosen.get(lang, (-1, ""))[0]:
                chosen[lang] = (size, locale)
        return {lang: by_locale[locale] for lang, (_, locale) in sorted(chosen.items())}

    @staticmethod
    def _code(locale: str, sample: str) -> str:
        base, _, variant = locale.partition("_")
        script = variant if len(variant) == 4 else detect_script(sample)
        return normalize(base, script)

    def languages(self) -> set[str]:
        return set(self._catalogues) | {ENGLISH}

    def documents(self) -> Iterator[Document]:
        english: dict[str, str] = {}
        for lang, files in self._catalogues.items():
            seen: set[str] = set()
            for po in files:
                for key, text in _translated(po):
                    english.setdefault(key, _msgid_text(key))
                    if key not in seen:
                        seen.add(key)
                        yield Document(lang, self.name, key, text)
        for key, text in sorted(english.items()):
            yield Document(ENGLISH, self.name, key, text)


_MSGSTR = re.compile(r'^msgstr(?:\[0\])? "(.+)"$', re.MULTILINE)


def _msgstr_sample(po_path: Path, limit: int = 200) -> str:
    """Some translated strings of a catalogue, read without parsing it (script detection)."""
    return " ".join(_MSGSTR.findall(po_path.read_text(encoding="utf-8"))[:limit])


def _msgid_text(key: str) -> str:
    return key.split("\x04", 1)[-1]


def _translated(po_path: Path) -> list[tuple[str, str]]:
    """(key, translation) of every translated, non-fuzzy entry; key = msgctxt␄msgid."""
    import polib

    pairs = []
    for entry in polib.pofile(str(po_path)).translated_entries():
        if entry.fuzzy or entry.obsolete:
            continue
        text = entry.msgstr or (entry.msgstr_plural or {}).get(0, "")
        if text.strip():
            key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
            pairs.append((key, text.strip()))
    return pairs


SOURCES: dict[str, type] = {"udhr": UDHRSource, "django": DjangoSource}


def build_sources(names: list[str]) -> list[Source]:
    return [SOURCES[name]() for name in names]
