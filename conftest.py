"""pytest's root configuration: which modules of gmmlib ``--doctest-modules`` may import.

gmmlib/_dask.py imports Dask, which is optional (gmmlib[dask]); without Dask that module
is not collected for its doctests (the tests that need Dask skip themselves). Numba is
optional too (gmmlib[fast]), but gmmlib/_kernels.py imports without it. `make
check-nonumba` runs the package tests with neither, as `pip install gmmlib[test]` gives them.
"""

import importlib.util

# module -> the optional package it imports when imported
OPTIONAL = {"gmmlib/_dask.py": "dask"}

collect_ignore = [
    path for path, package in OPTIONAL.items() if importlib.util.find_spec(package) is None
]
