"""``njit`` for the CPU kernels: numba's when it is installed, else a stub that fails on call.

So ``import dlrmcomp`` works where numba is missing (a GPU box running only the CuPy path);
the CPU codecs then raise ImportError when used.
"""
try:
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on machines without numba
    def njit(*args, **kwargs):
        def wrap(fn):
            def missing(*a, **k):
                raise ImportError(f"{fn.__name__} is a CPU kernel and needs numba (pip install numba)")
            return missing
        return wrap(args[0]) if args and callable(args[0]) else wrap
