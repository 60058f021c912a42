"""pytest's root configuration: what `--doctest-modules` may import.

gmmlib/_kernels.py imports Numba at import time; Numba is optional (gmmlib[fast]),
so without it that module is not collected for doctests. (CI runs the package tests
once without Numba, to exercise the NumPy kernel the README promises.)
"""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("numba") else ["gmmlib/_kernels.py"]
