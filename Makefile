# Everything a fresh machine needs: `make run` serves the portal on its embedded
# defaults, `make test` runs the test suite. Both create the virtualenv first.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint migrations-check messages messages-check clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || "$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m cpr_portal.catalogue compile
	@echo "Return links from the payment pages use CPR_SITE_URL=$${CPR_SITE_URL:-http://$(HOST):$(PORT)}"
	$(PY) manage.py migrate --no-input
	$(PY) manage.py create_dev_staff
	CPR_SITE_URL=$${CPR_SITE_URL:-http://$(HOST):$(PORT)} $(PY) manage.py runserver $(HOST):$(PORT)

test: install
	$(PY) -m cpr_portal.catalogue compile
	$(PY) -m pytest $(PYTEST_ARGS)

# Add new strings to locale/es/LC_MESSAGES/django.po (needs xgettext from GNU gettext).
messages: install
	$(PY) -m cpr_portal.catalogue update

# Fail when a message of the catalogue is untranslated or fuzzy.
messages-check: install
	$(PY) -m cpr_portal.catalogue check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

migrations-check: install
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
