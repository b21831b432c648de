"""``python -m twostream_das`` (also what ``torchrun -m twostream_das`` runs)."""

import sys

from .cli import main

sys.exit(main())
