"""The paper's evaluation suites (GLUE, XTREME, MTEB, TiQuAD/FoQA) on any checkpoint."""
