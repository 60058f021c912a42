# The README's commands. Each target creates .venv and installs what it needs on first use
# (check-nonumba: its own .venv-nonumba).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard chapters/*.ipynb chapters/*/*.ipynb))
BOOK_FLAGS := -W -n --keep-going

.PHONY: install book book-zh pot check check-nonumba test test-book lint execute lab bench clean

install: $(STAMP)

# Re-install whenever requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@# Build matplotlib's font cache now: on a fresh machine the first import prints a
	@# notice to stderr, which nbval would see as a changed output.
	$(BIN)/python -c "import matplotlib.pyplot"
	@# Compile the engine's Numba kernels into their cache now, once, so that the first
	@# `make check` runs in well under a minute (tools/warm_numba_cache.py says why).
	$(BIN)/python tools/warm_numba_cache.py
	touch $(STAMP)

## make book: build the HTML book into _build/html (no warnings allowed), then its Chinese
## edition into _build/html/zh (make book-zh)
book: $(STAMP)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	$(MAKE) book-zh

## The Chinese edition (README, "The Chinese edition"). `jupyter-book build` cannot set the
## language, so book-zh runs sphinx-build on the conf.py that `jupyter-book config
## sphinx .` generates from _config.yml: it is written at the root only for the length of
## the sphinx-build and removed afterwards, whatever the outcome (never commit it). _ext is
## put on the path for the book's extension (_ext/zh_edition.py). ZH_WORK holds the
## extracted templates, the zh doctrees and the zh HTML (building straight into
## _build/html/zh would drop the zh build's executed-notebook folder into the English site);
## HTML_OUT is where the English edition is (the zh HTML is copied into HTML_OUT/zh).
ZH_LANG  := zh_CN
ZH_WORK  ?= _build/zh
HTML_OUT ?= _build/html
ZH_SPHINX = $(BIN)/jupyter-book config sphinx . >/dev/null && status=0 && \
  PYTHONPATH=_ext $(BIN)/sphinx-build -q
ZH_DONE  = || status=$$?; rm -f conf.py; exit $$status

## make pot: extract the English messages (one catalog per page) and update
## locales/zh_CN/LC_MESSAGES/<page>.po: translations of unchanged messages are kept, a
## changed message is marked fuzzy (its old translation kept as a suggestion), a message
## gone from the English is kept as obsolete (#~). Then translate the new and fuzzy entries.
## (Extraction runs Jupyter Book's gettext builder with its own output path: sharing the
## HTML build's would mix their doctrees.)
pot: $(STAMP)
	rm -rf $(ZH_WORK)/pot
	$(BIN)/jupyter-book build . --builder custom --custom-builder gettext \
	  --path-output $(ZH_WORK)/pot >/dev/null
	$(BIN)/sphinx-intl update -p $(ZH_WORK)/pot/_build/gettext -d locales -l $(ZH_LANG) \
	  -w 0 >/dev/null
	$(BIN)/python tests/book/test_translation.py --summary

## make book-zh: the Chinese edition alone (the English one must be built: it is copied into
## HTML_OUT/zh); warnings are errors, as for the English edition
## (Sphinx compiles each .po into a .mo beside it: it is given a copy of locales/ in ZH_WORK,
## so that no compiled catalog lands in the sources.)
book-zh: $(STAMP)
	rm -rf $(ZH_WORK)/html $(ZH_WORK)/locales
	mkdir -p $(ZH_WORK) && cp -r locales $(ZH_WORK)/locales
	$(ZH_SPHINX) -b html -D language=$(ZH_LANG) -D locale_dirs=$(abspath $(ZH_WORK))/locales \
	  $(BOOK_FLAGS) -d $(ZH_WORK)/doctrees . $(ZH_WORK)/html $(ZH_DONE)
	rm -rf $(HTML_OUT)/zh
	cp -r $(ZH_WORK)/html $(HTML_OUT)/zh

## make check: the fast loop: lint, then the package tests (tests/*.py), gmmlib's doctests
## and the example of gmmlib/README.md (pyproject's testpaths); no book, no browser, and
## the tests marked slow left out
check: $(STAMP) lint
	$(BIN)/python -m pytest -q -m "not slow"

## make check-nonumba: the package tests once more without Numba (and without Dask), as a
## `pip install gmmlib[test]` user gets them: every engine test runs the NumPy kernel.
## A second venv holds gmmlib, its `test` extra and nothing else, at requirements.txt's
## versions (a constraints file: requirements.txt minus numba and llvmlite).
NONUMBA       := .venv-nonumba
NONUMBA_BIN   := $(NONUMBA)/bin
NONUMBA_STAMP := $(NONUMBA)/.installed
$(NONUMBA_STAMP): requirements.txt pyproject.toml
	test -x $(NONUMBA_BIN)/python || $(PYTHON) -m venv $(NONUMBA)
	$(NONUMBA_BIN)/python -m pip install --quiet --upgrade pip
	grep -Ev '^(numba|llvmlite)==' requirements.txt > $(NONUMBA)/constraints.txt
	$(NONUMBA_BIN)/python -m pip install --quiet -c $(NONUMBA)/constraints.txt -e ".[test]"
	touch $(NONUMBA_STAMP)

check-nonumba: $(NONUMBA_STAMP)
	@if $(NONUMBA_BIN)/python -c "import numba" 2>/dev/null; then \
	  echo "$(NONUMBA) has numba installed; it must not (rm -rf $(NONUMBA))" >&2; exit 1; fi
	$(NONUMBA_BIN)/python -m pytest -q -m "not slow" tests gmmlib

## make test: everything: lint, the package tests (slow ones included), the book build,
## then `make test-book`, the book's checks (tests/book/ and chapters/): every notebook
## re-executed by nbval in strict mode (each code cell's fresh outputs must equal its stored
## ones, after tests/book/nbval_sanitize.cfg; nbval compares the text of outputs, not
## images), the notebooks stored executed, the equation pairing, the API page, the browser
## test. --nbval-current-env runs each notebook's kernel with this venv's interpreter.
NBVAL_FLAGS := --nbval --nbval-current-env --nbval-cell-timeout=120 \
  --nbval-sanitize-with=tests/book/nbval_sanitize.cfg
test: $(STAMP) lint
	$(BIN)/python -m pytest -q
	$(MAKE) book
	$(MAKE) test-book

test-book: $(STAMP)
	$(BIN)/python -m pytest -q tests/book chapters $(NBVAL_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check gmmlib tests benchmarks tools _ext conftest.py
	$(BIN)/ruff format --check gmmlib tests benchmarks tools _ext conftest.py
	@# the notebooks' code cells, at the book's 88 columns (outputs are not touched)
	$(BIN)/ruff format --check --line-length 88 chapters

## make execute: re-run every chapter notebook in place so its stored outputs are fresh
execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=300 --ExecutePreprocessor.kernel_name=python3 $(NOTEBOOKS)

## make lab: JupyterLab from the project's venv, with gmmlib installed and jupyterlab-myst,
## which renders the notebooks' MyST markup as the book does (README, "Running the notebooks
## in JupyterLab"). make lab-deps installs requirements-lab.txt (once, again when it
## changes); make test-book needs it too, for the JupyterLab test (tests/book/test_lab.py).
## JupyterLab refuses to run as root unless told, as on a container or CI machine.
LAB_STAMP := $(VENV)/.lab-installed
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
.PHONY: lab-deps
lab-deps: $(LAB_STAMP)
$(LAB_STAMP): requirements-lab.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.txt -r requirements-lab.txt
	$(BIN)/jupyter labextension list 2>&1 | grep -q "jupyterlab-myst.*enabled.*OK"
	touch $(LAB_STAMP)
test-book: $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab $(LAB_FLAGS) chapters

## make bench: the speed and memory benchmark (prints a table, writes
## benchmarks/results/bench_em.json; see README). Some machines set OPENBLAS_CORETYPE /
## OPENBLAS_L2_SIZE to work around old OpenBLAS builds; they slow a current numpy, so the
## benchmark runs without them (the tests keep the environment as it is).
bench: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/bench_em.py

## make clean: the build and the caches (not the venvs .venv and .venv-nonumba)
clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -not -path './$(NONUMBA)/*' -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -not -path './$(VENV)/*' -not -path './$(NONUMBA)/*' -prune -exec rm -rf {} +
