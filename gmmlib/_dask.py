"""EM sums over a Dask array: a map-reduce over its chunks of rows (Dask is optional).

An EM iteration needs the data only through sums over the samples, so each chunk of
rows computes its own sums and Dask adds them up; only those small sums travel. The
scheduler is the one configured in Dask. This is the only module of gmmlib that
imports Dask; :class:`gmmlib.EMEngine` imports it when it is given a Dask array.
"""

from __future__ import annotations

import dask
import dask.array as da


class DaskRows:
    """A 2-D Dask array in chunks of whole rows, with its sample weights chunked alike.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Rechunked to whole rows if its columns are split.
    sample_weight : ndarray of shape (n_samples,), optional
    """

    def __init__(self, X, sample_weight=None):
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        self.X = X
        self._weight = (
            None if sample_weight is None else da.from_array(sample_weight, chunks=(X.chunks[0],))
        )

    def map_reduce(self, chunk_sums, total, per_chunk=None):
        """``total([chunk_sums(x, w) for every chunk x of rows and its weights w])``.

        ``w`` is None when there are no sample weights. With ``per_chunk`` (a list, one
        item per chunk of rows), the calls are ``chunk_sums(x, w, item)``. Computed by
        Dask, on its configured scheduler: the calls of ``chunk_sums`` run where the
        chunks are (threads, or the worker processes of a ``dask.distributed`` cluster),
        in parallel, and only their sums travel. ``chunk_sums`` and ``total`` must then
        be picklable: module-level functions, or ``functools.partial`` of them.
        """
        rows = self.X.to_delayed().ravel()
        weights = [None] * len(rows) if self._weight is None else self._weight.to_delayed()
        extra = [] if per_chunk is None else [per_chunk]
        parts = [
            dask.delayed(chunk_sums)(x, w, *more)
            for x, w, *more in zip(rows, weights, *extra, strict=True)
        ]
        return dask.delayed(total)(parts).compute()
