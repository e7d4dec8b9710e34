"""Metrics as fairseq scorers: WER, BLEU-1..4, ROUGE-L."""

from slt_plugins._submodules import import_submodules

import_submodules(__name__, __path__)
