"""Read data pickles without running code from them.

The official CIFAR files are Python pickles, and a pickle may name any importable callable (``os.system``
included) that `pickle.load` then calls. `load_data_pickle` admits only what those files hold: dicts,
lists, tuples, bytes, str, numbers, and numpy arrays rebuilt through numpy's own reconstruction functions
with a plain (non-object) dtype. Anything else is refused with one line naming the file, before any of it
is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A data pickle asked for something other than plain data and numpy arrays."""


def _dtype(spec: Any, *args: Any) -> np.dtype[Any]:
    dtype = np.dtype(spec, *args)
    if dtype.hasobject:  # an object array's payload is itself unpickled objects: not data
        raise UnsafePickleError(f"object dtype {spec!r}")
    return dtype


def _latin1(text: Any, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickleError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _scalar_from(multiarray: Any) -> Any:
    def scalar(dtype: Any, *args: Any) -> Any:  # numpy scalars (np.int64(3)) pickle as scalar(dtype, bytes)
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafePickleError(f"numpy scalar of {dtype!r}")
        return multiarray.scalar(dtype, *args)

    return scalar


def _numpy_functions() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    reconstruct = multiarray._reconstruct  # type: ignore[attr-defined]
    frombuffer = numeric._frombuffer  # type: ignore[attr-defined]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype,
                                           ("_codecs", "encode"): _latin1}
    for module in ("numpy.core", "numpy._core"):  # files pickled before and after numpy 2 renamed it
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
        allowed[(f"{module}.multiarray", "scalar")] = _scalar_from(multiarray)
    return allowed


class _DataUnpickler(pickle.Unpickler):
    _allowed = _numpy_functions()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"persistent id {pid!r}")


def loads_data_pickle(data: bytes, *, encoding: str = "bytes") -> Any:
    """Unpickle `data` admitting only plain data and numpy arrays (raises `UnsafePickleError` otherwise)."""
    return _DataUnpickler(io.BytesIO(data), encoding=encoding).load()


def load_data_pickle(path: str | Path, *, encoding: str = "bytes") -> Any:
    """Unpickle the file at `path` admitting only plain data and numpy arrays.

    Raises:
        UnsafePickleError: the file asks for anything else; the one-line message names the file and what
            it asked for. Nothing it names is called.
    """
    path = Path(path)
    try:
        return loads_data_pickle(path.read_bytes(), encoding=encoding)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path} is not a plain data pickle: it asks for {exc}, which a data file never "
                                f"needs; nothing in it was run. Replace it with the official file") from None
