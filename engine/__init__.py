"""The fingerprint engine: supervisor, bounded queue, forked workers, shared memory, LMDB store."""
