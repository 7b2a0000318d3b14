"""XTREME: fine-tune on English, score every language zero-shot; per-language results and
the plain mean of the 8 tasks (the paper's XTREME average). Run as a stage:
`python -m mmbert.suites.xtreme`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmbert.config import PipelineConfig
from mmbert.suites import choice, classify, qa, tokens
from mmbert.suites.glue import glue
from mmbert.suites.runner import run_finetune
from mmbert.suites.tasks import NLI_PAIR, QA_COLUMNS, QA_RECIPE, EvalSet, Task, Training, TrainStep, ref, squad_training

SUITE = "xtreme"
KINDS = {"classify": classify, "choice": choice, "qa": qa, "tokens": tokens}


XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGS = ("de", "en", "es", "fr", "ja", "ko", "zh")
XCOPA_LANGS = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
XQUAD_LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_LANGS = ("ar", "de", "en", "es", "hi", "vi", "zh")
TYDIQA_LANGS = ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te")
WIKIANN_LANGS = ("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu",
                 "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta",
                 "te", "th", "tl", "tr", "ur", "vi", "yo", "zh")
UDPOS_LANGS = {"af": "Afrikaans", "ar": "Arabic", "eu": "Basque", "bg": "Bulgarian", "nl": "Dutch", "en": "English",
               "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German", "el": "Greek", "he": "Hebrew",
               "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
               "kk": "Kazakh", "ko": "Korean", "zh": "Chinese", "mr": "Marathi", "fa": "Persian",
               "pt": "Portuguese", "ru": "Russian", "es": "Spanish", "tl": "Tagalog", "ta": "Tamil",
               "te": "Telugu", "th": "Thai", "tr": "Turkish", "ur": "Urdu", "vi": "Vietnamese", "yo": "Yoruba"}
XTREME_NOTE = "XTREME protocol: English training data only, every language scored zero-shot, no target-language dev set."

TRAININGS = (
    Training("mnli", "classify", (TrainStep(glue("mnli", "train"), 3),), NLI_PAIR, 2e-5, 128,
             note="XNLI is scored with the MNLI model (GLUE recipe)."),
    Training("pawsx", "classify", (TrainStep(ref("google-research-datasets/paws-x", "en", "train"), 2),),
             ("sentence1", "sentence2"), 2e-5, 128),
    Training("copa", "choice", (TrainStep(ref("allenai/social_i_qa", "default", "train"), 5),
                                TrainStep(ref("aps/super_glue", "copa", "train"), 5)), ("copa",), 2e-5, 128,
             note="SocialIQA (5 epochs) then English COPA (5 epochs), as in XCOPA's paper."),
    squad_training(),
    Training("tydiqa", "qa", (TrainStep(ref("juletxara/tydiqa_xtreme", "en", "train"), 3),), QA_COLUMNS,
             note="TyDiQA-GoldP English training set, SQuAD recipe (3 epochs, LR 3e-5, length 384).", **QA_RECIPE),
    Training("wikiann", "tokens", (TrainStep(ref("unimelb-nlp/wikiann", "en", "train"), 10),), ("ner_tags",),
             2e-5, 128),
    Training("udpos", "tokens", (TrainStep(ref("google/xtreme", "udpos.English", "train"), 10),), ("pos_tags",),
             2e-5, 128),
)

TASKS = (
    Task("xnli", SUITE, "mnli", "accuracy",
         tuple(EvalSet(lang, ref("facebook/xnli", lang, "test")) for lang in XNLI_LANGS), "XNLI", XTREME_NOTE),
    Task("pawsx", SUITE, "pawsx", "accuracy",
         tuple(EvalSet(lang, ref("google-research-datasets/paws-x", lang, "test")) for lang in PAWSX_LANGS), "PAWS-X"),
    Task("xcopa", SUITE, "copa", "accuracy",
         tuple(EvalSet(lang, ref("cambridgeltl/xcopa", lang, "test")) for lang in XCOPA_LANGS), "XCOPA"),
    Task("xquad", SUITE, "squad", "squad_f1",
         tuple(EvalSet(lang, ref("google/xquad", f"xquad.{lang}", "validation")) for lang in XQUAD_LANGS), "XQuAD"),
    Task("mlqa", SUITE, "squad", "squad_f1",
         tuple(EvalSet(lang, ref("facebook/mlqa", f"mlqa.{lang}.{lang}", "test")) for lang in MLQA_LANGS), "MLQA",
         "Context and question in the same language (the XTREME setting)."),
    Task("tydiqa", SUITE, "tydiqa", "squad_f1",
         tuple(EvalSet(lang, ref("juletxara/tydiqa_xtreme", lang, "test")) for lang in TYDIQA_LANGS), "TyDiQA",
         "XTREME scores TyDiQA-GoldP on its dev set, which this hub copy names 'test'."),
    Task("wikiann", SUITE, "wikiann", "span_f1",
         tuple(EvalSet(lang, ref("unimelb-nlp/wikiann", lang, "test")) for lang in WIKIANN_LANGS), "WikiANN"),
    Task("udpos", SUITE, "udpos", "span_f1",
         tuple(EvalSet(code, ref("google/xtreme", f"udpos.{name}", "test")) for code, name in UDPOS_LANGS.items()),
         "UDPOS", "seqeval F1 over POS tags, as XTREME's own scorer."),
)




def run_suite(models: dict[str, str], cfg: PipelineConfig, work: Path, connect: Callable[[], dict | None]) -> dict:
    return run_finetune(SUITE, TASKS, TRAININGS, KINDS, models, cfg.suites.xtreme, cfg.suites, work, connect)


if __name__ == "__main__":
    from mmbert.suites.stage import stage_main

    stage_main(SUITE, run_suite)
