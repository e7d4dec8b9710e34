"""Optimizers and learning-rate schedulers the recipes need and fairseq lacks; each module registers itself."""

from slt_plugins._submodules import import_submodules

import_submodules(__name__, __path__)
