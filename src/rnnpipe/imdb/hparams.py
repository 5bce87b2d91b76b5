"""`rnnpipe imdb hparams`: the model hyperparameters train uses.

Defined in rnnpipe.core.hparams; this module is where `rnnpipe imdb hparams` finds it.
"""

import rnnpipe.core.hparams  # noqa: F401  (importing it registers the command)
