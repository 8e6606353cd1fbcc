"""``engine-query``: answer questions from the store, never blocking a running engine-run.

- ``cli``: the command line, its options and exit codes;
- ``commands``: show, export, stats, failures, similar, playlist, duplicates, plot, map;
- ``similarity``: the distance (robust scaling fitted on the library, weights), nearest
  neighbours, playlists, near duplicates, and the library cache;
- ``plots``: matplotlib figures (the ``plot`` extra);
- ``output``: where ``-o FILE`` may write, and writing it without clobbering anything (a
  device node, a link, a folder, a file a failed command would leave half written).

Nothing here imports ``engine.run``; a file given to ``similar`` or ``plot`` is fingerprinted
through ``engine.decode``.
"""
