"""``python -m tideflow.sandbox serve|up|down|status``: run or control the local sandbox cluster."""

import sys

from tideflow.sandbox.cluster import main

sys.exit(main())
