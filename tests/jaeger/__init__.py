"""Tests against a real Jaeger v2 (see conftest.py for how they find it).

A package, unlike the other test folders, so that its ``conftest`` is imported as
``jaeger.conftest`` and does not take the place of the suite's own ``conftest`` module, which
some tests import by that name.
"""
