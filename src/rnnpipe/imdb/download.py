"""`rnnpipe imdb download`: the data, from the mirror folder or the official URL.

Defined in rnnpipe.core.fetch; this module is where `rnnpipe imdb download` finds it.
"""

import rnnpipe.core.fetch  # noqa: F401  (importing it registers the command)
