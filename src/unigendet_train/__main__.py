"""`python -m unigendet_train <stage> ...` (what torchrun launches)."""

import sys

from .main import main

sys.exit(main())
