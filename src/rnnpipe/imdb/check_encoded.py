"""`rnnpipe imdb check_encoded`: the data quality gate after encode.

Defined in rnnpipe.imdb.checks; this module is where `rnnpipe imdb check_encoded` finds it.
"""

import rnnpipe.imdb.checks  # noqa: F401  (importing it registers the command)
