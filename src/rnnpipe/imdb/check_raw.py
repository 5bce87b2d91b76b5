"""`rnnpipe imdb check_raw`: the data quality gate after ingest.

Defined in rnnpipe.imdb.checks; this module is where `rnnpipe imdb check_raw` finds it.
"""

import rnnpipe.imdb.checks  # noqa: F401  (importing it registers the command)
