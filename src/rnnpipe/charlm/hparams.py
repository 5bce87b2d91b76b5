"""`rnnpipe charlm hparams`: the model hyperparameters train uses.

Defined in rnnpipe.core.hparams; this module is where `rnnpipe charlm hparams` finds it.
"""

import rnnpipe.core.hparams  # noqa: F401  (importing it registers the command)
