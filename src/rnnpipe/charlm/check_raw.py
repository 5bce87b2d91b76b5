"""`rnnpipe charlm check_raw`: the data quality gate after ingest.

Defined in rnnpipe.charlm.checks; this module is where `rnnpipe charlm check_raw` finds it.
"""

import rnnpipe.charlm.checks  # noqa: F401  (importing it registers the command)
