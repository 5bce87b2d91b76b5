"""`rnnpipe imdb encode`: the splits as ids.

Defined in rnnpipe.imdb.prepare; this module is where `rnnpipe imdb encode` finds it.
"""

import rnnpipe.imdb.prepare  # noqa: F401  (importing it registers the command)
