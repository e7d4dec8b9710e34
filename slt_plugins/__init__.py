"""fairseq-slt: sign language recognition and translation as a fairseq plugin.

``--user-dir slt_plugins`` (or ``import slt_plugins``) registers the tasks, models and criteria, and makes
fairseq checkpoints load under torch's ``weights_only=True``.
"""

from slt_plugins import compat

compat.install()

from slt_plugins import criteria, data, decoding, models, optim, scoring, tasks  # noqa: E402,F401  (imports register)

__version__ = "0.1.0"
