"""`rnnpipe charlm check_encoded`: the data quality gate after encode.

Defined in rnnpipe.charlm.checks; this module is where `rnnpipe charlm check_encoded` finds it.
"""

import rnnpipe.charlm.checks  # noqa: F401  (importing it registers the command)
