"""`rnnpipe charlm vocab`: the vocabulary, from the training split.

Defined in rnnpipe.charlm.prepare; this module is where `rnnpipe charlm vocab` finds it.
"""

import rnnpipe.charlm.prepare  # noqa: F401  (importing it registers the command)
