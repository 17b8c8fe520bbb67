"""Is the value a pipeline produced the value the notebook held?

``compare(expected, actual)`` answers with ``None`` (equal) or one short reason
a person can act on: ``column 'x' differs at row 3: 1.0 != 2.0``.  Recorded
characterization tests and ``nb2pipe verify`` both rely on it (SPEC §4).

Values are sorted into kinds by one table (``_KINDS``); two values of different
kinds differ by type, two of the same kind go to that kind's comparer.  Floats
compare with tolerances (``|e - a| <= atol + rtol * |e|``, NaN equals NaN),
figures are never compared, and nothing here raises: an unexpected failure is
itself reported as the reason.  pandas and numpy are imported only when a value
comes from them, so importing this module stays cheap.
"""

from __future__ import annotations

import numbers
import pickle
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Values shown in reasons are cut to this many characters.
_SHOWN = 60
# Figure-like values: modules whose objects are never compared.
_FIGURE_MODULES = ("matplotlib", "seaborn.axisgrid")


@dataclass(frozen=True)
class _Tol:
    rtol: float
    atol: float


def compare(
    expected: object, actual: object, *, rtol: float = 1e-7, atol: float = 1e-9
) -> str | None:
    """``None`` when ``actual`` equals ``expected``, else a short reason."""
    try:
        reason = _compare(expected, actual, _Tol(rtol, atol), set())
        return None if reason is None else str(reason)
    except RecursionError:
        return "values are nested too deeply to compare"
    except Exception as e:  # noqa: BLE001 - a comparison never raises
        return f"could not compare {_type(expected)} values: {type(e).__name__}: {e}"


def _compare(e: object, a: object, tol: _Tol, seen: set) -> str | None:
    """Dispatch on the kind of both values (see ``_KINDS``)."""
    if e is a:
        return None
    kind_e, kind_a = _kind(e), _kind(a)
    if kind_e is not kind_a:
        return f"type {_type(e)} != {_type(a)}"
    if kind_e.strict and type(e) is not type(a) and not _moved(type(e), type(a)):
        return f"type {_type(e)} != {_type(a)}"
    key = (id(e), id(a))
    if key in seen:  # a cycle: assume equal, the first visit decides
        return None
    seen.add(key)
    try:
        return kind_e.compare(e, a, tol, seen)
    finally:
        seen.discard(key)


# ---------------------------------------------------------------- helpers


def _module(value: object) -> str:
    return type(value).__module__ or ""


def _from(value: object, *prefixes: str) -> bool:
    module = _module(value)
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _type(value: object) -> str:
    return type(value).__name__


def _show(value: object) -> str:
    if (
        _from(value, "numpy")
        and getattr(value, "ndim", None) == 0
        and hasattr(value, "item")
    ):
        value = value.item()  # 3.0, not np.float64(3.0)
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{_type(value)}>"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class _Path(str):
    """A reason that already starts with where it happened (``['a'].coef_: …``)."""


def _at(where: str, reason: str | None) -> str | None:
    """Prefix a nested reason with where it happened: ``['a'][1]: 2 != 3``."""
    if reason is None:
        return None
    if isinstance(reason, _Path):
        dot = "." if reason[:1].isalnum() else ""  # [0].params['alpha'], [0].coef_
        return _Path(where + dot + reason)
    return _Path(f"{where}: {reason}")


# ---------------------------------------------------------------- scalars


def _is_bool(v: object) -> bool:
    if isinstance(v, bool):
        return True
    if _from(v, "numpy"):
        import numpy as np

        return isinstance(v, np.bool_)
    return False


def _is_number(v: object) -> bool:
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


def _is_nan(v: object) -> bool:
    try:
        return bool(v != v)  # noqa: PLR0124 - NaN is the one value unequal to itself
    except Exception:  # noqa: BLE001
        return False


def _compare_bool(e, a, tol, seen) -> str | None:
    return None if bool(e) == bool(a) else f"{_show(e)} != {_show(a)}"


def _compare_number(e, a, tol: _Tol, seen) -> str | None:
    """Integers exactly; anything inexact within tolerance, NaN equal to NaN."""
    if isinstance(e, numbers.Integral) and isinstance(a, numbers.Integral):
        return None if int(e) == int(a) else f"{_show(e)} != {_show(a)}"
    if _is_nan(e) or _is_nan(a):
        return None if _is_nan(e) and _is_nan(a) else f"{_show(e)} != {_show(a)}"
    try:
        close = e == a or abs(e - a) <= tol.atol + tol.rtol * abs(e)
    except TypeError:
        close = e == a
    return None if close else f"{_show(e)} != {_show(a)}"


def _compare_equal(e, a, tol, seen) -> str | None:
    return None if e == a else f"{_show(e)} != {_show(a)}"


# ---------------------------------------------------------------- containers


def _compare_mapping(e: Mapping, a: Mapping, tol, seen) -> str | None:
    """Keys first (what is missing or extra), then each value."""
    return _compare_entries(e, a, tol, seen, "keys", lambda k: f"[{_show(k)}]")


def _compare_fields(
    e: dict, a: dict, tol, seen, what: str = "attributes"
) -> str | None:
    """Attribute dictionaries; reasons point at ``.name``."""
    return _compare_entries(e, a, tol, seen, what, lambda k: f".{k}")


def _compare_entries(
    e: Mapping, a: Mapping, tol, seen, what: str, where: Callable
) -> str | None:
    missing = [k for k in e if k not in a]
    extra = [k for k in a if k not in e]
    if missing or extra:
        return _key_reason(what, missing, extra)
    for k in e:
        reason = _compare(e[k], a[k], tol, seen)
        if reason:
            return _at(where(k), reason)
    return None


def _key_reason(what: str, missing: list, extra: list) -> str:
    parts = []
    if missing:
        parts.append(f"missing {_show(missing)}")
    if extra:
        parts.append(f"extra {_show(extra)}")
    return f"{what} differ: " + ", ".join(parts)


def _compare_sequence(e, a, tol, seen) -> str | None:
    if len(e) != len(a):
        return f"length {len(e)} != {len(a)}"
    for i, (x, y) in enumerate(zip(e, a)):
        reason = _compare(x, y, tol, seen)
        if reason:
            return _at(f"[{i}]", reason)
    return None


def _compare_set(e, a, tol, seen) -> str | None:
    if e == a:
        return None
    return _key_reason("items", sorted(e - a, key=repr), sorted(a - e, key=repr))


# ---------------------------------------------------------------- numpy


def _is_ndarray(v: object) -> bool:
    if not _from(v, "numpy"):
        return False
    import numpy as np

    return isinstance(v, np.ndarray)


def _compare_array(e, a, tol: _Tol, seen) -> str | None:
    """Shape, dtype kind, then values: tolerance for numbers, exact otherwise."""
    if e.shape != a.shape:
        return f"shape {e.shape} != {a.shape}"
    if e.dtype.kind != a.dtype.kind:
        return f"dtype {e.dtype} != {a.dtype}"
    if e.ndim == 0:
        return _compare(e[()], a[()], tol, seen)
    index = _first_array_mismatch(e, a, tol, seen)
    if index is None:
        return None
    where = ", ".join(map(str, index))
    return f"differs at [{where}]: " + (
        _compare(e[index], a[index], tol, seen) or "values differ"
    )


def _first_array_mismatch(e, a, tol: _Tol, seen) -> tuple | None:
    """Index of the first element that differs, or ``None``."""
    import numpy as np

    if e.dtype.kind == "O":
        for index in np.ndindex(e.shape):
            if _compare(e[index], a[index], tol, seen) is not None:
                return index
        return None
    bad = np.argwhere(~_same_elements(e, a, tol))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


def _same_elements(e, a, tol: _Tol):
    """Element-wise equality of two non-object arrays of one shape."""
    import numpy as np

    kind = e.dtype.kind
    if e.dtype.names and a.dtype.names == e.dtype.names:
        # structured arrays: field by field (padding bytes are not data)
        same = np.ones(e.shape, dtype=bool)
        for name in e.dtype.names:
            field = _same_elements(e[name], a[name], tol)
            same &= field.reshape(field.shape[: e.ndim] + (-1,)).all(axis=-1) \
                if field.ndim > e.ndim else field
        return same
    if kind in "fc":
        same = np.isclose(a, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    elif kind in "mM":
        same = e.view("i8") == a.view("i8")  # NaT is one fixed integer
    elif kind == "V":
        same = np.array(
            [x.tobytes() == y.tobytes() for x, y in zip(e.ravel(), a.ravel())]
        ).reshape(e.shape)
    else:
        same = e == a
    return np.asarray(same, dtype=bool)


# ---------------------------------------------------------------- pandas


def _is_pandas(v: object) -> bool:
    return _from(v, "pandas")


def _compare_pandas(e, a, tol: _Tol, seen) -> str | None:
    import pandas as pd

    if isinstance(e, pd.DataFrame):
        return _compare_frame(e, a, tol, seen)
    if isinstance(e, pd.Series):
        return _compare_series(e, a, tol, seen)
    if isinstance(e, pd.Index):
        return _compare_index(e, a, tol, seen)
    if isinstance(e, pd.api.extensions.ExtensionArray):
        return _compare_sequence(list(e), list(a), tol, seen)
    if _pandas_na(e) or _pandas_na(a):  # NaT, NA
        return None if _pandas_na(e) and _pandas_na(a) else f"{_show(e)} != {_show(a)}"
    return _compare_object(e, a, tol, seen)


def _pandas_na(v: object) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v)) is True
    except (TypeError, ValueError):
        return False


def _compare_frame(e, a, tol: _Tol, seen) -> str | None:
    """Shape, columns, index, then column by column; pandas has the last word."""
    import pandas.testing as pdt

    missing = [c for c in e.columns if c not in a.columns]
    extra = [c for c in a.columns if c not in e.columns]
    named = _key_reason("columns", missing, extra) if missing or extra else ""
    if e.shape != a.shape:
        return f"shape {e.shape} != {a.shape}" + (f"; {named}" if named else "")
    if named:
        return named
    if not e.columns.equals(a.columns):
        return _at(
            "columns", _compare_index(e.columns, a.columns, tol, seen) or "differ"
        )
    if not e.index.equals(a.index):
        return _at("index", _compare_index(e.index, a.index, tol, seen) or "differs")
    for i, name in enumerate(e.columns):
        reason = _compare_series(e.iloc[:, i], a.iloc[:, i], tol, seen, column=True)
        if reason:
            return f"column {_show(name)} {reason}"
    return _pandas_says(pdt.assert_frame_equal, e, a, tol)


def _compare_series(e, a, tol: _Tol, seen, column: bool = False) -> str | None:
    """A Series, or one column of a frame (whose index the frame checked)."""
    import pandas.testing as pdt

    if len(e) != len(a):
        return f"length {len(e)} != {len(a)}"
    if str(e.dtype) != str(a.dtype):
        return f"dtype {e.dtype} != {a.dtype}"
    if not column and not e.index.equals(a.index):
        return _at("index", _compare_index(e.index, a.index, tol, seen) or "differs")
    position = _first_series_mismatch(e, a, tol, seen)
    if position is not None:
        x, y = e.iloc[position], a.iloc[position]
        return f"differs at row {_show(e.index[position])}: {_show(x)} != {_show(y)}"
    return _pandas_says(pdt.assert_series_equal, e, a, tol, check_names=not column)


def _first_series_mismatch(e, a, tol: _Tol, seen) -> int | None:
    import numpy as np

    try:
        ev, av = e.to_numpy(), a.to_numpy()
    except (TypeError, ValueError):
        ev, av = np.asarray(list(e), dtype=object), np.asarray(list(a), dtype=object)
    if ev.dtype.kind != av.dtype.kind or ev.dtype.kind not in "biufcmM":
        ev, av = ev.astype(object), av.astype(object)
    index = _first_array_mismatch(ev, av, tol, seen)
    return None if index is None else index[0]


def _compare_index(e, a, tol: _Tol, seen) -> str | None:
    import pandas.testing as pdt

    if len(e) != len(a):
        return f"length {len(e)} != {len(a)}"
    if not e.equals(a):
        for i, (x, y) in enumerate(zip(e, a)):
            if _compare(x, y, tol, seen) is not None and not (
                _pandas_na(x) and _pandas_na(y)
            ):
                return f"differs at position {i}: {_show(x)} != {_show(y)}"
    return _pandas_says(pdt.assert_index_equal, e, a, tol)


def _pandas_says(check: Callable, e, a, tol: _Tol, **options) -> str | None:
    """Run a ``pandas.testing`` assertion; keep the telling lines of its message."""
    try:
        check(e, a, check_exact=False, rtol=tol.rtol, atol=tol.atol, **options)
    except AssertionError as err:
        return _shorten(str(err))
    return None


def _shorten(message: str) -> str:
    """pandas' messages span lines: keep the headline and the left/right values."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    kept = [lines[0]] if lines else ["differs"]
    kept += [
        line
        for line in lines[1:]
        if line.startswith(("Attribute", "[left]", "[right]", "At positional"))
    ]
    text = "; ".join(kept)
    return text if len(text) <= 3 * _SHOWN else text[: 3 * _SHOWN - 3] + "..."


# ---------------------------------------------------------------- scipy.sparse


def _is_sparse(v: object) -> bool:
    return _from(v, "scipy.sparse")


def _compare_sparse(e, a, tol: _Tol, seen) -> str | None:
    if e.shape != a.shape:
        return f"shape {e.shape} != {a.shape}"
    diff = abs(e - a)
    scale = abs(e).max() if e.nnz else 0
    if diff.nnz and diff.max() > tol.atol + tol.rtol * scale:
        return f"sparse values differ (max difference {diff.max()!r})"
    return None


# ---------------------------------------------------------------- objects


def _is_figure(v: object) -> bool:
    return _from(v, *_FIGURE_MODULES)


def _never_compared(e, a, tol, seen) -> None:
    """Figures are for people; their pixels are not part of the proof."""
    return None


def _is_estimator(v: object) -> bool:
    return not isinstance(v, type) and callable(getattr(v, "get_params", None))


def _compare_estimator(e, a, tol: _Tol, seen) -> str | None:
    """Same parameters and same fitted attributes (public names ending in ``_``)."""
    reason = _compare(e.get_params(deep=False), a.get_params(deep=False), tol, seen)
    if reason:
        return _at("params", reason)
    return _compare_fields(_fitted(e), _fitted(a), tol, seen, "fitted attributes")


def _fitted(estimator: object) -> dict:
    names = vars(estimator) if hasattr(estimator, "__dict__") else {}
    return {k: v for k, v in names.items() if k.endswith("_") and not k.startswith("_")}


def _is_code(v: object) -> bool:
    return isinstance(
        v, (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type)
    )


def _moved(e: object, a: object) -> bool:
    """A function or class of the notebook (``__main__``) and its copy that
    nb2pipe moved to the generated ``<package>.helpers`` module."""
    module_e = getattr(e, "__module__", None)
    module_a = getattr(a, "__module__", None) or ""
    return (module_e == "__main__" and module_a.endswith(".helpers")
            and getattr(e, "__qualname__", None) == getattr(a, "__qualname__", None))


def _compare_code(e, a, tol, seen) -> str | None:
    """Functions, classes and modules: same qualified name (and bytecode).

    A notebook function moved to helpers.py counts as the same function; its
    bytecode may differ when nb2pipe passed it the globals it reads.
    """
    if _moved(e, a):
        return None

    def name(v):
        if isinstance(v, types.ModuleType):
            return v.__name__
        return f"{getattr(v, '__module__', None)}.{getattr(v, '__qualname__', None)}"

    if name(e) != name(a):
        return f"{name(e)} != {name(a)}"
    code_e, code_a = getattr(e, "__code__", None), getattr(a, "__code__", None)
    if code_e is not None and code_a is not None and code_e.co_code != code_a.co_code:
        return f"function {name(e)} has different code"
    return None


def _compare_object(e, a, tol: _Tol, seen) -> str | None:
    """``==`` when the type defines it, else attributes, else pickled bytes."""
    if _is_nan(e) and _is_nan(a):  # NaT and friends
        return None
    if type(e).__eq__ is not object.__eq__:
        verdict = _equality(e, a)
        if verdict is not None:
            return None if verdict else f"{_show(e)} != {_show(a)}"
    if hasattr(e, "__dict__") and hasattr(a, "__dict__"):
        attrs_e, attrs_a = vars(e), vars(a)
        if attrs_e or attrs_a or not _has_state(e):
            return _compare_fields(attrs_e, attrs_a, tol, seen)
    states = _states(e, a)
    if states is not None:  # C extension objects (sklearn's Tree) expose a state dict
        return _compare_fields(states[0], states[1], tol, seen)
    return _compare_pickled(e, a)


def _states(e, a) -> tuple[dict, dict] | None:
    """Both values' ``__getstate__()`` when both give a dict of fields."""
    try:
        state_e, state_a = e.__getstate__(), a.__getstate__()
    except Exception:  # noqa: BLE001 - no usable state: compare pickled bytes
        return None
    if isinstance(state_e, dict) and isinstance(state_a, dict) and state_e:
        return state_e, state_a
    return None


def _equality(e, a) -> bool | None:
    """``e == a`` as a bool, or ``None`` when it does not give one."""
    try:
        result = e == a
        if isinstance(result, bool) or _is_bool(result):
            return bool(result)
        if callable(getattr(result, "all", None)):
            return bool(result.all())
    except Exception:  # noqa: BLE001 - fall back to the next way of comparing
        return None
    return None


def _has_state(value: object) -> bool:
    """Whether a value keeps state outside ``__dict__`` (slots or C fields)."""
    cls = type(value)
    custom = any(
        getattr(cls, name, None) is not getattr(object, name, None)
        for name in ("__reduce__", "__reduce_ex__", "__getstate__")
    )
    return bool(getattr(cls, "__slots__", ())) or custom


def _compare_pickled(e, a) -> str | None:
    try:
        same = pickle.dumps(e, protocol=4) == pickle.dumps(a, protocol=4)
    except Exception as err:  # noqa: BLE001
        return f"cannot compare {_type(e)} values ({type(err).__name__}: {err})"
    return None if same else f"{_type(e)} values differ (their pickled bytes differ)"


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class _Kind:
    """One kind of value: how to recognise it and how to compare two of them.

    ``strict`` kinds also require both values to have exactly the same type;
    the others compare across types (``1`` and ``numpy.float64(1.0)``).
    """

    name: str
    matches: Callable[[object], bool]
    compare: Callable[..., str | None]
    strict: bool = True


_KINDS: tuple[_Kind, ...] = (
    _Kind("figure", _is_figure, _never_compared, strict=False),
    _Kind("none", lambda v: v is None, _compare_equal),
    _Kind("bool", _is_bool, _compare_bool, strict=False),
    _Kind("number", _is_number, _compare_number, strict=False),
    _Kind("str", lambda v: isinstance(v, str), _compare_equal, strict=False),
    _Kind(
        "bytes",
        lambda v: isinstance(v, (bytes, bytearray)),
        _compare_equal,
        strict=False,
    ),
    _Kind("ndarray", _is_ndarray, _compare_array),
    _Kind("pandas", _is_pandas, _compare_pandas),
    _Kind("sparse", _is_sparse, _compare_sparse),
    _Kind("mapping", lambda v: isinstance(v, Mapping), _compare_mapping),
    _Kind("sequence", lambda v: isinstance(v, (list, tuple)), _compare_sequence),
    _Kind("set", lambda v: isinstance(v, (set, frozenset)), _compare_set),
    _Kind("code", _is_code, _compare_code, strict=False),
    _Kind("estimator", _is_estimator, _compare_estimator),
    _Kind("object", lambda v: True, _compare_object),
)


def _kind(value: object) -> _Kind:
    return next(kind for kind in _KINDS if kind.matches(value))


# ---------------------------------------------------------------- fingerprints
#
# A value too large to store as a test fixture (or one that differs between two
# runs of the notebook) is stored as its fingerprint: type, shape, columns and
# dtypes, and, unless ``content=False``, a summary of its content (sums of float
# data, digests of everything else).  ``compare(fp, fingerprint(actual))`` then
# checks a new value against it with the usual float tolerances.

# Elements of a container summarised one by one; the rest only counted.
_FINGERPRINT_ITEMS = 100


def fingerprint(value: object, content: bool = True, depth: int = 0) -> dict:
    """A small JSON-able summary of ``value`` that still changes when it does."""
    module = _module(value)
    # a class of the notebook lives in __main__ there and in <package>.helpers here
    module = "" if module == "__main__" or module.endswith(".helpers") else module + "."
    found: dict = {"type": f"{module}{type(value).__qualname__}"}
    if depth > 3:
        return found
    for kind, summarise in _FINGERPRINTS:
        if kind(value):
            found.update(summarise(value, content, depth))
            break
    return found


def loosen(stored: dict) -> dict:
    """What ``fingerprint(value, content=False)`` keeps of a full fingerprint."""
    kept = {k: v for k, v in stored.items()
            if k in ("type", "columns", "dtypes", "dtype", "params", "ndim", "shape[1:]")}
    if "shape" in stored:
        kept.update(_fp_shape(tuple(stored["shape"]), False))
    return kept


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def _fp_scalar(value, content, depth) -> dict:
    if not content:
        return {}
    if isinstance(value, str) and len(value) > 200:
        return {"len": len(value), "digest": _digest(value.encode("utf-8", "replace"))}
    if _is_number(value) and _is_nan(value):
        return {"value": "nan"}
    return {"value": value.item() if hasattr(value, "item") else value}


def _fp_array(value, content, depth) -> dict:
    import numpy as np

    found = {"dtype": str(value.dtype), **_fp_shape(value.shape, content)}
    if content:
        found.update(_fp_numbers(np.asarray(value)))
    return found


def _fp_shape(shape: tuple, content: bool) -> dict:
    """The whole shape; without content (a value that varies between runs) only
    the dimensions after the first: how many rows survive a random split varies."""
    return {"shape": list(shape)} if content else {"ndim": len(shape),
                                                   "shape[1:]": list(shape[1:])}


def _fp_numbers(array) -> dict:
    """Sums for floats (tolerant), a digest for exact data."""
    import numpy as np

    if array.dtype.kind in "fc":
        finite = np.where(np.isfinite(array), array, 0)
        return {
            "sum": complex(finite.sum()).real,
            "abs_sum": float(np.abs(finite).sum()),
            "nan": int(np.isnan(array).sum()),
        }
    if array.dtype.hasobject:
        return {"digest": _digest(repr(array.tolist()).encode("utf-8", "replace"))}
    return {"digest": _digest(np.ascontiguousarray(array).tobytes())}


def _fp_pandas(value, content, depth) -> dict:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        found = {
            **_fp_shape(value.shape, content),
            "columns": [str(c) for c in value.columns],
            "dtypes": [str(d) for d in value.dtypes],
        }
        if content:
            found["content"] = {
                str(c): _fp_column(value.iloc[:, i]) for i, c in enumerate(value.columns)
            }
            found["index"] = _fp_column(value.index.to_series())
        return found
    if isinstance(value, pd.Series):
        found = {**_fp_shape(value.shape, content), "dtype": str(value.dtype)}
        if content:
            found.update(content=_fp_column(value), index=_fp_column(value.index.to_series()))
        return found
    return {"len": len(value)} if hasattr(value, "__len__") and content else {}


def _fp_column(column) -> dict:
    import numpy as np
    import pandas as pd

    if column.dtype.kind in "fc":
        return _fp_numbers(column.to_numpy())
    try:
        hashed = pd.util.hash_pandas_object(column, index=False).to_numpy()
    except Exception:  # noqa: BLE001 - unhashable cells: their text stands in
        return {"digest": _digest(repr(column.tolist()).encode("utf-8", "replace"))}
    return {"digest": _digest(np.ascontiguousarray(hashed).tobytes())}


def _fp_mapping(value, content, depth) -> dict:
    if not content:  # how many entries a varying value has varies too
        return {}
    items = list(value.items())[:_FINGERPRINT_ITEMS]
    return {"len": len(value),
            "items": {str(k): fingerprint(v, content, depth + 1) for k, v in items}}


def _fp_sequence(value, content, depth) -> dict:
    if not content:
        return {}
    items = list(value)[:_FINGERPRINT_ITEMS]
    return {"len": len(value), "items": [fingerprint(v, content, depth + 1) for v in items]}


def _fp_estimator(value, content, depth) -> dict:
    params = value.get_params(deep=False)
    found: dict = {
        "params": {
            k: v if isinstance(v, (str, int, float, bool, type(None))) else _type(v)
            for k, v in sorted(params.items())
        }
    }
    if content:
        found["fitted"] = {
            k: fingerprint(v, content, depth + 1) for k, v in sorted(_fitted(value).items())
        }
    return found


def _fp_object(value, content, depth) -> dict:
    """Public attributes, summarised one by one.  Not pickled bytes: objects
    that cache results lazily (statsmodels' results) pickle differently after
    use, and private attributes hold such caches."""
    if not content or not hasattr(value, "__dict__"):
        return {}
    public = sorted((k, v) for k, v in vars(value).items() if not k.startswith("_"))
    return {"attributes": {k: fingerprint(v, content, depth + 1)
                           for k, v in public[:_FINGERPRINT_ITEMS]}}


_FINGERPRINTS: tuple = (
    (_is_figure, lambda value, content, depth: {}),
    (lambda v: v is None or isinstance(v, (str, bool)) or _is_number(v), _fp_scalar),
    (_is_ndarray, _fp_array),
    (_is_pandas, _fp_pandas),
    (lambda v: isinstance(v, Mapping), _fp_mapping),
    (lambda v: isinstance(v, (list, tuple)), _fp_sequence),
    (lambda v: isinstance(v, (set, frozenset)), lambda v, c, d: _fp_sequence(sorted(v, key=repr), c, d)),
    (_is_estimator, _fp_estimator),
    (lambda v: True, _fp_object),
)
