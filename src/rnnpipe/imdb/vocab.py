"""`rnnpipe imdb vocab`: the vocabulary, from the training split.

Defined in rnnpipe.imdb.prepare; this module is where `rnnpipe imdb vocab` finds it.
"""

import rnnpipe.imdb.prepare  # noqa: F401  (importing it registers the command)
