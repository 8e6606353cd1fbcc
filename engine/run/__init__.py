"""``engine-run``: fingerprint a library into the store, with every core, incrementally.

- ``cli``: the command line, its options and exit codes;
- ``scan``: inputs (arguments, stdin) to a stream of audio files and problems;
- ``catalog``: what the store already knows about a file, in one read snapshot;
- ``supervisor``: the loop (NOTE [engine protocol]): feed, collect, retry, commit;
- ``backends``: where jobs run: ``fork`` (forked workers, shared memory) and ``dask``;
- ``task``: one job in a worker: decode, analyse, answer as data; ``messages``: what travels;
- ``report``: records on stdout, progress, budget and summary on stderr.

Nothing here imports ``engine.query``.
"""
