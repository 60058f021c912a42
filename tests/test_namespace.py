"""gmmlib's public surface: one flat namespace, no name that hides a module.

The code lives in private modules (gmmlib._e_step, ...); ``gmmlib.__all__`` is the
public API. A public function named like a module it shares the package with would
replace that module as an attribute of the package (``gmmlib.m_step`` was once both):
``import gmmlib.m_step as ms`` would then give the function, and a dotted name copied
from the docs would fail.
"""

import importlib
import pkgutil
import types

import gmmlib


def _submodules():
    return [m.name for m in pkgutil.iter_modules(gmmlib.__path__)]


def test_every_name_in_all_exists():
    missing = [name for name in gmmlib.__all__ if not hasattr(gmmlib, name)]
    assert not missing, f"names in gmmlib.__all__ that gmmlib does not define: {missing}"


def test_all_has_no_duplicates_and_no_private_name():
    assert len(set(gmmlib.__all__)) == len(gmmlib.__all__)
    assert not [name for name in gmmlib.__all__ if name.startswith("_")]


def test_implementation_modules_are_private():
    public = sorted(name for name in _submodules() if not name.startswith("_"))
    # the two public modules hold data, not code: the article's example, the equation list
    assert public == ["article", "equations"], public


def test_no_public_attribute_shadows_a_module():
    for name in _submodules():
        try:
            module = importlib.import_module(f"gmmlib.{name}")
        except ModuleNotFoundError as err:  # the optional Dask path, without Dask
            if err.name != "dask":
                raise
            continue
        attr = getattr(gmmlib, name, module)
        assert attr is module, f"gmmlib.{name} is {attr!r}, not the module gmmlib.{name}"
    for name in gmmlib.__all__:
        assert name not in _submodules(), f"gmmlib.{name} is both public and a module"


def test_public_objects_are_what_the_modules_define():
    for name in gmmlib.__all__:
        obj = getattr(gmmlib, name)
        if isinstance(obj, types.ModuleType):
            raise AssertionError(f"gmmlib.{name} is a module; __all__ lists objects")
        module = getattr(obj, "__module__", None)
        if module is not None and callable(obj):
            assert module.startswith("gmmlib"), f"gmmlib.{name} comes from {module}"
