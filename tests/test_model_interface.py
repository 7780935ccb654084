"""Bring your own model: any class with the interface of ``gradtune.seq2seq.interface`` trains and translates."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY

from gradtune.errors import ConfigError
from gradtune.seq2seq.interface import Seq2SeqModel, model_class
from gradtune.seq2seq.model import Transformer

TESTS = Path(__file__).resolve().parent


def test_the_transformer_is_registered_and_has_the_interface():
    assert model_class("transformer") is Transformer
    assert issubclass(Transformer, Seq2SeqModel)


def test_a_model_name_that_cannot_be_used_is_one_line():
    with pytest.raises(ConfigError, match=r"model.name is 'nope'; give a registered model \(transformer\)"):
        model_class("nope")
    with pytest.raises(ConfigError, match="cannot import it"):
        model_class("no_such_module:Model")
    with pytest.raises(ConfigError, match="lacks hidden, output_embedding"):
        model_class("gradtune.seq2seq.model:ModelConfig")


@pytest.mark.slow
def test_a_users_model_given_as_module_and_class_trains_and_translates(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    run = tmp_path / "run"
    gradtune = [sys.executable, "-m", "gradtune"]
    model = ["--set", "model.name=toy_models:CrossAttentionOnly", "--set", "eval_every=4", "--set", "bleu_examples=2"]
    train = subprocess.run(
        [*gradtune, "train", "--steps", "4", "--run-dir", str(run), *TINY, *model],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    assert "dev loss" in train.stdout
    translate = subprocess.run(
        [*gradtune, "translate", "--run", str(run), "--beam", "2"],
        input="Atidaryti failą\nLangas\n", env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert translate.returncode == 0, translate.stderr[-2000:]
    assert len(translate.stdout.splitlines()) == 2
