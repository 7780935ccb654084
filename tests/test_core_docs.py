"""The examples in ``gradtune.core``'s docstrings run and give what they say."""

import doctest
import importlib
import pkgutil

import pytest

import gradtune.core

MODULES = [f"gradtune.core.{m.name}" for m in pkgutil.iter_modules(gradtune.core.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_core_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_core_has_examples_to_run():
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert attempted >= 10  # the SGD closed form and the metric keys at least
