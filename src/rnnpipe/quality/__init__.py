"""Data quality gates: Great Expectations suites for the raw and encoded data of both projects."""

import logging
import os

# before great_expectations is first imported: no usage statistics (offline machines), and no
# INFO chatter from its import and set-up in the stage's log
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
logging.getLogger("great_expectations").setLevel(logging.WARNING)
