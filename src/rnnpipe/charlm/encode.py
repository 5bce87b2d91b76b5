"""`rnnpipe charlm encode`: the splits as ids.

Defined in rnnpipe.charlm.prepare; this module is where `rnnpipe charlm encode` finds it.
"""

import rnnpipe.charlm.prepare  # noqa: F401  (importing it registers the command)
