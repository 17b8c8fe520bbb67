"""compare(): pandas/numpy-aware equality with short reasons."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

from nb2pipe.compare import compare

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")


# ---------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    "expected, actual",
    [
        (1, 1),
        (1, 1.0),
        (1.0, 1.0 + 1e-12),
        (float("nan"), float("nan")),
        (float("inf"), float("inf")),
        (1 + 2j, 1 + 2j),
        ("a", "a"),
        (b"a", b"a"),
        (None, None),
        (True, True),
    ],
)
def test_equal_scalars(expected, actual):
    assert compare(expected, actual) is None


@pytest.mark.parametrize(
    "expected, actual, reason",
    [
        (1, 2, "1 != 2"),
        (1.0, 1.1, "1.0 != 1.1"),
        (float("nan"), 1.0, "nan != 1.0"),
        ("a", "b", "'a' != 'b'"),
        (b"a", b"b", "b'a' != b'b'"),
        (True, False, "True != False"),
        (None, 0, "type NoneType != int"),
        ("1", 1, "type str != int"),
        (b"a", "a", "type bytes != str"),
    ],
)
def test_different_scalars(expected, actual, reason):
    assert compare(expected, actual) == reason


def test_big_integers_compare_exactly():
    assert compare(10**20, 10**20 + 1) == f"{10**20} != {10**20 + 1}"


def test_tolerances_are_used():
    assert compare(100.0, 100.5, rtol=1e-2) is None
    assert compare(100.0, 100.5) == "100.0 != 100.5"
    assert compare(0.0, 1e-6, atol=1e-5) is None


def test_numpy_scalars_mix_with_python_numbers():
    assert compare(np.float64("nan"), float("nan")) is None
    assert compare(np.int64(3), 3) is None
    assert compare(np.float32(0.5), 0.5) is None
    assert compare(np.bool_(True), True) is None
    assert compare(np.float64(1.0), 2.0) == "1.0 != 2.0"


# ---------------------------------------------------------------- containers


def test_nested_containers_point_at_the_difference():
    assert compare({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) is None
    assert (
        compare({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == "['a'][1]['b']: 2 != 3"
    )


def test_dict_keys_then_values():
    assert compare({"a": 1}, {"b": 1}) == "keys differ: missing ['a'], extra ['b']"
    assert compare({"a": 1, "b": 2}, {"b": 2, "a": 1}) is None


def test_sequences():
    assert compare([1, 2], [1, 2, 3]) == "length 2 != 3"
    assert compare((1, 2), [1, 2]) == "type tuple != list"
    assert compare([1.0, float("nan")], [1.0, float("nan")]) is None


def test_sets():
    assert compare({1, 2}, {2, 1}) is None
    assert compare({1, 2}, {2, 3}) == "items differ: missing [1], extra [3]"


def test_mapping_types_must_match():
    assert compare(OrderedDict(a=1), {"a": 1}) == "type OrderedDict != dict"


def test_cycles_terminate():
    a: list = [1]
    a.append(a)
    b: list = [1]
    b.append(b)
    assert compare(a, b) is None


# ---------------------------------------------------------------- numpy


def test_arrays_equal_within_tolerance_and_nan():
    assert compare(np.array([1.0, np.nan]), np.array([1.0 + 1e-12, np.nan])) is None


def test_arrays_report_shape_dtype_and_position():
    assert compare(np.arange(3), np.arange(4)) == "shape (3,) != (4,)"
    assert compare(np.array([1, 2]), np.array([1.0, 2.0])) == "dtype int64 != float64"
    assert compare(
        np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 5.0]])
    ) == ("differs at [1, 1]: 4.0 != 5.0")


def test_non_numeric_arrays():
    assert compare(np.array(["a", "b"]), np.array(["a", "b"])) is None
    assert (
        compare(np.array(["a", "b"]), np.array(["a", "c"]))
        == "differs at [1]: 'b' != 'c'"
    )
    objects = np.array([{"k": 1}, None], dtype=object)
    assert compare(objects, np.array([{"k": 1}, None], dtype=object)) is None
    assert (
        compare(objects, np.array([{"k": 2}, None], dtype=object))
        == "differs at [0]: ['k']: 1 != 2"
    )
    nat = np.array(["2020-01-01", "NaT"], dtype="datetime64[ns]")
    assert compare(nat, nat.copy()) is None


def test_zero_dimensional_arrays():
    assert compare(np.array(1.5), np.array(1.5)) is None
    assert compare(np.array(1.5), np.array(2.5)) == "1.5 != 2.5"


# ---------------------------------------------------------------- pandas


def frame(**columns):
    return pd.DataFrame(columns)


def test_equal_frames_within_tolerance():
    assert compare(frame(x=[1.0, 2.0, 3.0]), frame(x=[1.0, 2.0, 3.0 + 1e-12])) is None
    assert compare(frame(x=["a", None]), frame(x=["a", None])) is None


def test_frame_value_difference_names_column_and_row():
    reason = compare(frame(x=[1.0, 2.0, 3.0, 1.0]), frame(x=[1.0, 2.0, 3.0, 2.0]))
    assert reason == "column 'x' differs at row 3: 1.0 != 2.0"


def test_frame_row_is_the_index_label():
    e = pd.DataFrame({"x": [1, 2]}, index=["a", "b"])
    a = pd.DataFrame({"x": [1, 3]}, index=["a", "b"])
    assert compare(e, a) == "column 'x' differs at row 'b': 2 != 3"


def test_frame_shape_and_columns():
    reason = compare(
        frame(x=[1, 2, 3], y=[1, 2, 3]), frame(x=[1, 2, 3], y=[1, 2, 3], z=[0, 0, 0])
    )
    assert reason == "shape (3, 2) != (3, 3); columns differ: extra ['z']"
    assert (
        compare(frame(x=[1]), frame(y=[1]))
        == "columns differ: missing ['x'], extra ['y']"
    )
    assert compare(frame(x=[1], y=[2]), frame(y=[2], x=[1])).startswith(
        "columns: differs at position 0"
    )


def test_frame_dtype_and_index():
    assert (
        compare(frame(x=[1, 2]), frame(x=[1.0, 2.0]))
        == "column 'x' dtype int64 != float64"
    )
    e = pd.DataFrame({"x": [1, 2, 3]})
    a = pd.DataFrame({"x": [1, 2, 3]}, index=[0, 1, 5])
    assert compare(e, a) == "index: differs at position 2: 2 != 5"


def test_frame_string_and_datetime_columns():
    assert (
        compare(frame(x=["a", "b"]), frame(x=["a", "c"]))
        == "column 'x' differs at row 1: 'b' != 'c'"
    )
    t1 = frame(t=pd.to_datetime(["2020-01-01", "2021-01-01"]))
    t2 = frame(t=pd.to_datetime(["2020-01-01", "2022-01-01"]))
    assert compare(t1, t1.copy()) is None
    assert compare(t1, t2).startswith(
        "column 't' differs at row 1: Timestamp('2021-01-01"
    )


def test_frame_categorical_column():
    e = frame(c=pd.Categorical(["a", "b"]))
    assert compare(e, e.copy()) is None
    assert (
        compare(e, frame(c=pd.Categorical(["a", "a"], categories=["a", "b"])))
        is not None
    )


def test_frame_versus_series_is_a_type_difference():
    assert compare(frame(x=[1]), pd.Series([1])) == "type DataFrame != Series"


def test_series():
    assert compare(pd.Series([1.0, np.nan]), pd.Series([1.0, np.nan])) is None
    assert (
        compare(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.5]))
        == "differs at row 1: 2.0 != 2.5"
    )
    reason = compare(pd.Series([1.0], name="a"), pd.Series([1.0], name="b"))
    assert reason is not None and "name" in reason


def test_index():
    assert compare(pd.Index([1, 2]), pd.Index([1, 2])) is None
    assert (
        compare(pd.Index([1, 2]), pd.Index([1, 3])) == "differs at position 1: 2 != 3"
    )


def test_pandas_scalars():
    assert compare(pd.Timestamp("2020"), pd.Timestamp("2020")) is None
    assert compare(pd.NaT, pd.NaT) is None
    assert compare(pd.Timestamp("2020"), pd.Timestamp("2021")) is not None


# ---------------------------------------------------------------- objects


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


class Opaque:
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __getstate__(self):
        return {"v": self.v}

    def __setstate__(self, state):
        self.v = state["v"]


class Weird:
    """Equality that does not give a bool."""

    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return "maybe"

    __hash__ = None


def test_objects_without_eq_compare_attributes():
    assert compare(Point(1, 2.0), Point(1, 2.0 + 1e-12)) is None
    assert compare(Point(1, 2), Point(1, 3)) == ".y: 2 != 3"


def test_objects_with_eq_use_it():
    from fractions import Fraction

    assert compare(Fraction(1, 3), Fraction(2, 6)) is None
    assert compare(Fraction(1, 3), Fraction(1, 4)) == "Fraction(1, 3) != Fraction(1, 4)"


def test_objects_with_non_bool_eq_fall_back_to_attributes():
    assert compare(Weird(1), Weird(1)) is None
    assert compare(Weird(1), Weird(2)) == ".v: 1 != 2"


def test_objects_without_dict_compare_pickled_bytes():
    assert compare(Opaque(1), Opaque(1)) is None
    # through __getstate__ when it gives the fields, else by pickled bytes
    assert compare(Opaque(1), Opaque(2)) in (
        ".v: 1 != 2", "Opaque values differ (their pickled bytes differ)")


def test_functions_and_modules():
    import json
    import os

    assert compare(json, json) is None
    assert compare(json, os) == "json != os"
    assert compare(len, len) is None

    def f():
        return 1

    def g():
        return 2

    assert compare(f, f) is None
    assert compare(f, g) is not None


def test_never_raises():
    def gen():
        yield 1

    reason = compare(gen(), gen())
    assert reason is not None and reason.startswith("cannot compare generator values")


def test_deep_nesting_gives_a_reason_not_an_error():
    deep_e: list = []
    deep_a: list = []
    e, a = deep_e, deep_a
    for _ in range(5000):
        e.append([])
        a.append([])
        e, a = e[0], a[0]
    a.append(1)
    assert compare(deep_e, deep_a) is not None


# ---------------------------------------------------------------- sklearn


def test_estimators_compare_params_and_fitted_attributes():
    linear_model = pytest.importorskip("sklearn.linear_model")
    X = np.array([[0.0], [1.0], [2.0]])
    y = np.array([0.0, 1.0, 2.0])
    fitted = linear_model.LinearRegression().fit(X, y)
    same = linear_model.LinearRegression().fit(X, y)
    other = linear_model.LinearRegression().fit(X, y * 2)
    assert compare(fitted, same) is None
    assert compare(fitted, other).startswith(".coef_: differs at [0]")
    assert (
        compare(linear_model.Ridge(alpha=1.0), linear_model.Ridge(alpha=2.0))
        == "params['alpha']: 1.0 != 2.0"
    )
    assert compare(linear_model.Ridge(), linear_model.Lasso()) == "type Ridge != Lasso"
    nested = compare({"m": [linear_model.Ridge(alpha=1.0)]}, {"m": [linear_model.Ridge(alpha=2.0)]})
    assert nested == "['m'][0].params['alpha']: 1.0 != 2.0"
    assert compare(fitted, linear_model.LinearRegression()).startswith(
        "fitted attributes differ: missing"
    )


def test_pipelines_compare_nested_estimators():
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    X = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]])
    p1 = pipeline.make_pipeline(preprocessing.StandardScaler()).fit(X)
    p2 = pipeline.make_pipeline(preprocessing.StandardScaler()).fit(X)
    p3 = pipeline.make_pipeline(preprocessing.StandardScaler(with_mean=False)).fit(X)
    assert compare(p1, p2) is None
    assert "with_mean" in compare(p1, p3)


# ---------------------------------------------------------------- figures


def test_figures_are_not_compared():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f1, ax1 = plt.subplots()
    ax1.plot([1, 2])
    f2, ax2 = plt.subplots()
    assert compare(f1, f2) is None
    assert compare(ax1, ax2) is None
    plt.close("all")


def test_import_is_lazy():
    code = "import sys, nb2pipe.compare; print('pandas' in sys.modules, 'numpy' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    assert out.stdout.split() == ["False", "False"]


def test_a_notebook_function_moved_to_helpers_is_the_same_function() -> None:
    import types

    from nb2pipe.compare import compare

    def get_year(x):
        return x.year

    moved = types.FunctionType(get_year.__code__, {}, "get_year")
    get_year.__module__ = "__main__"
    moved.__module__ = "ch10.helpers"
    moved.__qualname__ = get_year.__qualname__
    assert compare(get_year, moved) is None
    other = types.FunctionType(get_year.__code__, {}, "get_year")
    other.__module__ = "elsewhere"
    other.__qualname__ = get_year.__qualname__
    assert compare(get_year, other) is not None


def test_structured_arrays_compare_fields_not_padding():
    import numpy as np

    dtype = np.dtype({"names": ["a", "b"], "formats": ["<i8", "u1"], "offsets": [0, 8],
                      "itemsize": 16})
    e = np.zeros(3, dtype=dtype)
    a = np.zeros(3, dtype=dtype)
    a.view("u1").reshape(3, 16)[:, 12] = 7  # padding differs
    assert compare(e, a) is None
    a["b"][2] = 1
    assert compare(e, a) == "differs at [2]: (0, 0) != (0, 1)"


# --- fingerprints: what a value too large to store is checked against ------------------------


def test_a_fingerprint_matches_an_equal_frame_and_catches_a_changed_cell() -> None:
    import pandas as pd

    from nb2pipe.compare import fingerprint

    frame = pd.DataFrame({"x": [1.0, 2.0, float("nan")], "s": ["a", "b", "c"], "n": [1, 2, 3]})
    stored = fingerprint(frame)
    assert compare(stored, fingerprint(frame.copy())) is None
    assert compare(stored, fingerprint(frame.assign(x=frame.x + 1e-12))) is None  # tolerance
    changed = frame.copy()
    changed.loc[1, "s"] = "B"
    assert "s" in compare(stored, fingerprint(changed))
    assert "x" in compare(stored, fingerprint(frame.assign(x=[1.0, 2.5, float("nan")])))
    assert compare(stored, fingerprint(frame.iloc[:2])) is not None


def test_a_loose_fingerprint_checks_only_the_form() -> None:
    import numpy as np

    from nb2pipe.compare import fingerprint

    stored = fingerprint(np.arange(6.0).reshape(2, 3), content=False)
    assert compare(stored, fingerprint(np.ones((2, 3)), content=False)) is None
    assert "shape" in compare(stored, fingerprint(np.ones((3, 2)), content=False))
    assert "dtype" in compare(stored, fingerprint(np.ones((2, 3), dtype=int), content=False))


def test_a_fingerprint_of_an_estimator_covers_its_fitted_state() -> None:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from nb2pipe.compare import fingerprint

    x = np.arange(10.0).reshape(-1, 1)
    model = LinearRegression().fit(x, 2 * x.ravel())
    other = LinearRegression().fit(x, 3 * x.ravel())
    assert compare(fingerprint(model), fingerprint(LinearRegression().fit(x, 2 * x.ravel()))) \
        is None
    assert "coef_" in compare(fingerprint(model), fingerprint(other))


def test_fingerprints_are_json_and_do_not_depend_on_set_order() -> None:
    import json

    from nb2pipe.compare import fingerprint

    value = {"tags": {"b", "a", "c"}, "n": 3, "name": "x" * 500}
    text = json.dumps(fingerprint(value), sort_keys=True)
    assert json.loads(text) == fingerprint({"n": 3, "name": "x" * 500, "tags": {"c", "a", "b"}})


def test_a_loose_fingerprint_ignores_how_many_rows_survived() -> None:
    import pandas as pd

    from nb2pipe.compare import fingerprint, loosen

    kept = fingerprint(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), content=False)
    assert compare(kept, fingerprint(pd.DataFrame({"a": [1.0]}), content=False)) is None
    assert compare(kept, fingerprint(pd.DataFrame({"b": [1.0]}), content=False)) is not None
    assert loosen(fingerprint(pd.DataFrame({"a": [5.0, 6.0]}))) == kept


def test_fingerprints_of_plain_objects_ignore_private_caches() -> None:
    from nb2pipe.compare import fingerprint

    class Result:
        def __init__(self, value):
            self.params = [value, 2.0]

    used = Result(1.0)
    used._cache = {"summary": "computed lazily"}
    assert compare(fingerprint(Result(1.0)), fingerprint(used)) is None
    assert "params" in compare(fingerprint(Result(1.0)), fingerprint(Result(1.5)))


def test_a_notebook_class_and_its_helpers_copy_have_the_same_fingerprint_type() -> None:
    from nb2pipe.compare import fingerprint

    notebook = type("Box", (), {"__module__": "__main__"})
    helpers = type("Box", (), {"__module__": "churn.helpers"})
    assert fingerprint(notebook())["type"] == fingerprint(helpers())["type"] == "Box"
