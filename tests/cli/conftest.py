"""Fixtures of the command-line tests (``trained_run`` lives in ``tests/conftest.py``, shared
with ``tests/test_bad_input.py``)."""
