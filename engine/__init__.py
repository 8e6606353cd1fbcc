"""The fingerprinting engine around the numeric kernels.

Rooms (each package's docstring says more):

- ``engine.run``: ``engine-run``: scan, catalog decisions, the supervisor and its execution
  backends (forked workers, Dask), progress and records;
- ``engine.query``: ``engine-query``: reads of the store, similarity, playlists, duplicates,
  plots;
- ``engine.store``: the LMDB store (records, batches, LRU bounds, the writer lock);
- shared by both sides: ``engine.decode`` (the one decode path and ``fingerprint_file``),
  ``engine.content_key``, ``engine.text`` (paths in messages, JSON lines), ``engine.errors``.

``engine.run`` and ``engine.query`` never import each other (NOTE [engine protocol] in
engine/run/supervisor.py). Importing ``engine`` itself loads nothing.
"""
