"""The registered fairseq criteria; each module registers itself on import."""

from slt_plugins._submodules import import_submodules

import_submodules(__name__, __path__)
