"""`rnnpipe imdb serve`: the champion over REST with mlflow models serve.

Defined in rnnpipe.core.serve; this module is where `rnnpipe imdb serve` finds it.
"""

import rnnpipe.core.serve  # noqa: F401  (importing it registers the command)
