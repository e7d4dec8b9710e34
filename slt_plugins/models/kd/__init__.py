"""The teachers of the multimodal distillation method (their students are ``s3d_encoder`` with a
``--sequence-model``, and ``joint`` for translation); each module registers itself on import."""

from slt_plugins._submodules import import_submodules

import_submodules(__name__, __path__)
