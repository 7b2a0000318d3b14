from __future__ import annotations

import pytest

from mmbert.corpus.langcodes import detect_script, normalize, split_code
from mmbert.corpus.sources import DjangoSource, Document, UDHRSource
from mmbert.corpus.split import LEAK_WINDOW, split_documents


@pytest.mark.parametrize(
    ("lang", "script", "code"),
    [("fr", "Latn", "fra_Latn"), ("zh", "Hans", "cmn_Hani"), ("zh", "Hant", "cmn_Hani"), ("ar", "Arab", "arb_Arab"),
     ("et", "Latn", "ekk_Latn"), ("fa", "Arab", "fas_Arab"), ("ko", "Kore", "kor_Hang"), ("tkt", "Deva", "tkt_Deva")],
)
def test_fineweb2_codes(lang, script, code):
    assert normalize(lang, script) == code
    assert split_code(code) == (code[:3], code[4:])


@pytest.mark.parametrize(
    ("text", "script"),
    [("Все люди рождаются свободными", "Cyrl"), ("すべての人間は、生まれながらにして自由", "Jpan"),
     ("人人生而自由", "Hani"), ("All human beings", "Latn"), ("ਸਾਰਾ ਮਨੁੱਖੀ ਪਰਿਵਾਰ", "Guru")],
)
def test_script_detection(text, script):
    assert detect_script(text) == script


def test_unknown_iso_code_is_named():
    with pytest.raises(ValueError, match="'qq'"):
        normalize("qq", "Latn")


def test_udhr_sentences_drop_truncations():
    class Sample:
        def __getattr__(self, name):
            return {"specimen_16": "Alle Menschen sind frei. Sie sind mit Vernunft begabt.\nAlle Menschen sind frei. Sie sind",
                    "tester": "Alle Menschen sind"}.get(name, "")

    assert UDHRSource().sentences(Sample()) == ["Alle Menschen sind frei.", "Sie sind mit Vernunft begabt."]


def test_embedded_sources_offer_many_languages():
    udhr, django = UDHRSource().languages(), DjangoSource().languages()
    assert len(udhr) > 700 and len(django) > 80
    assert {"eng_Latn", "fra_Latn", "cmn_Hani", "srp_Cyrl", "srp_Latn"} <= django
    assert all(len(code) == 8 and code[3] == "_" for code in udhr | django)


def _docs():
    docs = []
    for i in range(200):
        for lang in ("eng_Latn", "fra_Latn", "deu_Latn"):
            docs.append(Document(lang, "django", f"msg{i}", f"{lang} text number {i} " + "x" * (i % 7)))
    docs.append(Document("tiny_Latn", "udhr", "a", "the only sentence one"))
    docs.append(Document("tiny_Latn", "udhr", "b", "the only sentence two"))
    return docs


def test_split_is_by_key_across_languages():
    train, held = split_documents(_docs(), 0.2, seed=0)
    held_keys = {(d.source, d.key) for d in held if d.source == "django"}
    train_keys = {(d.source, d.key) for d in train if d.source == "django"}
    assert not held_keys & train_keys
    for key in held_keys:  # parallel text is held out in every language at once
        assert sum(1 for d in held if (d.source, d.key) == key) == 3
    assert 0.1 < len(held_keys) / 200 < 0.3


def test_every_language_keeps_both_sides_and_split_is_stable():
    train, held = split_documents(_docs(), 0.2, seed=0)
    assert {d.lang for d in train} == {d.lang for d in held}
    assert split_documents(_docs(), 0.2, seed=0) == (train, held)
    assert split_documents(_docs(), 0.2, seed=1) != (train, held)


def test_no_held_out_passage_inside_training_text():
    long = "Everyone has the right to rest and leisure, including reasonable limitation of working hours."
    docs = [Document("eng_Latn", "udhr", str(i), text) for i, text in
            enumerate([long, long + " And periodic holidays with pay.", "Unrelated sentence about other things."] * 1)]
    docs += [Document("eng_Latn", "udhr", f"pad{i}", f"filler sentence {i} " * 3) for i in range(30)]
    train, held = split_documents(docs, 0.5, seed=0)
    for t in train:
        for h in held:
            windows = {h.text[i:i + LEAK_WINDOW] for i in range(max(1, len(h.text) - LEAK_WINDOW + 1))}
            assert not any(w in t.text for w in windows)
