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


def test_the_core_names_no_application_value_outside_its_docstrings():
    """``core`` serves any JAX model: the translation run's values live in the application."""
    import ast
    import io
    import pathlib
    import re
    import tokenize

    words = re.compile(r"\b(corpus|bucket|example|label_smoothing)\b")
    found = []
    for path in pathlib.Path(gradtune.core.__file__).parent.glob("*.py"):
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):  # drop the docstrings, keep every other line of code
            body = getattr(node, "body", None)
            first = body[0] if isinstance(body, list) and body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                value.value = ""
        code = ast.unparse(tree)
        comments = [
            t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT
        ]
        found += [f"{path.name}: {m.group()}" for chunk in (code, *comments) for m in words.finditer(chunk)]
    assert found == []
