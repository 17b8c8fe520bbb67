"""The generated projects' serializers: exact round trips or an honest fallback."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nb2pipe.compare import compare

TEMPLATE = Path(__file__).resolve().parents[1] / "nb2pipe" / "templates" / "serializers.py"
spec = importlib.util.spec_from_file_location("generated_serializers", TEMPLATE)
io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(io)

CASES = {
    "plain frame": (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), "parquet", b"PAR1"),
    # parquet or pickle, depending on the pandas/pyarrow versions: exact either way
    "int column names": (pd.DataFrame(np.eye(2)), "parquet", (b"PAR1", b"\x80")),
    "None in object column": (pd.DataFrame({"h": ["a", None]}, dtype=object), "parquet",
                              (b"PAR1", b"\x80")),
    "index with freq": (pd.DataFrame({"v": range(3)},
                                     index=pd.date_range("2020", periods=3, freq="W-WED")),
                        "parquet", b"\x80"),
    "float array": (np.arange(6.0).reshape(2, 3), "npy", b"\x93NUMPY"),
    "object array": (np.array([1, "a"], dtype=object), "npy", b"\x80"),
    "json list": ([1, 2, {"k": "v"}], "json", b"["),
    "tuple is not json": ((1, 2), "json", b"\x80"),
    "int keys are not json": ({1: "a"}, "json", b"\x80"),
    "nan is not json": (float("nan"), "json", b"\x80"),
    "numpy scalar is not json": (np.float64(1.5), "json", b"\x80"),
    "series is not a frame": (pd.Series([1, 2]), "parquet", b"\x80"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_is_exact(name: str, tmp_path: Path) -> None:
    value, fmt, magic = CASES[name]
    path = tmp_path / f"value.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        io.save(value, path, fmt)
    assert path.read_bytes().startswith(magic if isinstance(magic, tuple) else (magic,))
    assert compare(value, io.load(path)) is None


def test_fallback_is_announced(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="saved with pickle"):
        io.save((1, 2), tmp_path / "t.json", "json")


def test_unpicklable_needed_value_fails_clearly(tmp_path: Path) -> None:
    with open(TEMPLATE) as handle, pytest.raises(TypeError, match="A later task needs it"):
        io.save(handle, tmp_path / "f.pkl", "pickle")


def test_unpicklable_final_value_leaves_a_note(tmp_path: Path) -> None:
    path = tmp_path / "f.pkl"
    with open(TEMPLATE) as handle, pytest.warns(UserWarning, match="not saved"):
        io.save(handle, path, "pickle", required=False)
    assert io.NOT_SAVED in json.loads(path.read_text())


def test_workdir_restores_cwd_and_path(tmp_path: Path) -> None:
    import os
    import sys

    before_cwd, before_path = os.getcwd(), list(sys.path)
    with io.workdir(tmp_path):
        assert Path.cwd() == tmp_path.resolve()
        assert sys.path[0] == str(tmp_path.resolve())
    assert os.getcwd() == before_cwd and sys.path == before_path
