"""The eight named databases of a store: their handles, and opening them in a process.

:func:`_open_dbs` is where a store comes into being and where its schema is checked: the writer
creates the databases and the counters of ``meta`` in an empty store, gives it its
``store_id`` and stamps its ``fingerprint_version``; a reader only opens what a writer made.
Both refuse a store of another :data:`~engine.store.SCHEMA_VERSION`. Before the writer takes
its lock, :func:`_inspect_existing` reads an existing environment without writing anything and
refuses a foreign LMDB environment, a file that is not LMDB, or a store of another schema, so
that such a directory is left byte for byte as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

import lmdb

from kernels.fingerprint import FINGERPRINT_VERSION

from ..errors import StoreError
from .codec import (
    _ID,
    _META_EVICTIONS,
    _META_FP_BYTES,
    _META_FP_VERSION,
    _META_NEXT_ID,
    _META_SCHEMA,
    _META_STORE_ID,
    _META_TICK,
    SCHEMA_VERSION,
    _u64,
)
from .fs import _from_lmdb, _from_oserror

#: The databases in ``data.mdb``, in the order of the fields of :class:`_Dbs`.
_DB_NAMES: Final = ("meta", "tracks", "paths", "keys", "fingerprints", "failures", "atime", "lru")
_DB_KEYS: Final = frozenset(name.encode("ascii") for name in _DB_NAMES)
#: Named databases an environment may hold (LMDB's ``max_dbs``).
_MAX_DBS: Final = 16
#: Foreign names an error message lists at most.
_FOREIGN_SHOWN: Final = 5


def _schema_problem(path: str, found: int | None) -> str | None:
    """What is wrong with a store's ``schema_version`` (``None``: it is this engine's)."""
    if found == SCHEMA_VERSION:
        return None
    if found is None:
        return (f"the store at {path} has no schema_version: it is not an engine store (or its "
                f"creation was interrupted); pass another --db")
    if found > SCHEMA_VERSION:
        return (f"the store at {path} was written with schema {found}; this engine reads schema "
                f"{SCHEMA_VERSION}: the store is newer than this engine; upgrade the engine "
                f"(pip install -U, in the environment engine-run runs from), or pass another "
                f"--db; the store is left as it is")
    return (f"the store at {path} was written with schema {found}; this engine reads schema "
            f"{SCHEMA_VERSION}: the store is older than this engine and is not converted; "
            f"fingerprint the library again into a new --db, or keep using the engine version "
            f"that wrote it; the store is left as it is")


def _foreign_problem(path: str, main: lmdb.Cursor[bytes]) -> str | None:
    """Why an environment is not an engine store, from a cursor on its main database.

    An engine store's main database holds exactly the names of its databases (LMDB keeps the
    named databases there); a new environment holds nothing. Anything else (another program's
    databases or keys, or some of the engine's names without ``meta``) is foreign.
    """
    ours: set[bytes] = set()
    foreign: list[bytes] = []
    for key in main.iternext(keys=True, values=False):
        if key in _DB_KEYS:
            ours.add(bytes(key))
        else:
            foreign.append(bytes(key))
            if len(foreign) > _FOREIGN_SHOWN:
                break
    if not foreign and (not ours or b"meta" in ours):
        return None
    shown = ", ".join(repr(k.decode("utf-8", "backslashreplace"))
                      for k in foreign[:_FOREIGN_SHOWN])
    held = (f"it holds {shown}{', ...' if len(foreign) > _FOREIGN_SHOWN else ''}"
            if foreign else f"it holds {len(ours)} of the engine's databases")
    return (f"the store at {path} is not an engine store: it is an LMDB environment of another "
            f"program ({held}, and no engine meta database); the engine never writes into it: "
            f"pass another --db (an empty or missing directory makes a new store)")


def _inspect_existing(path: str) -> None:
    """Refuse an existing ``data.mdb`` that is not this engine's store, changing nothing.

    Reads the environment with LMDB opened read-only and without its lock file (no file in
    the directory is written or created): a foreign environment (:func:`_foreign_problem`), a
    file that is not LMDB, or a store of another schema is refused here, before the writer lock
    is created. A missing or empty ``data.mdb`` (a new store, or a creation interrupted before
    LMDB wrote a byte) passes. The caller holds ``writer.lock`` when it exists, so that no
    engine writer changes the environment while it is read unlocked.

    Parameters
    ----------
    path : str
        The store's directory.

    Raises
    ------
    StoreError
        Naming the path, what was found and the fix.
    """
    data = os.path.join(path, "data.mdb")
    try:
        if os.stat(data).st_size == 0:
            return
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _from_oserror(path, "reading data.mdb", exc, access="read") from exc
    try:
        env = lmdb.open(path, map_size=0, subdir=True, readonly=True, lock=False, create=False,
                        max_dbs=_MAX_DBS)
    except lmdb.InvalidError as exc:
        raise StoreError(
            f"the store at {path} holds a data.mdb that is not an LMDB file ({exc}): it is not an "
            f"engine store; the engine never writes into it: pass another --db (an empty or "
            f"missing directory makes a new store)"
        ) from exc
    except lmdb.VersionMismatchError as exc:
        raise StoreError(
            f"the store at {path} was written by another LMDB version ({exc}): pass another --db"
        ) from exc
    except lmdb.Error as exc:
        if "already open in this process" in str(exc):
            return  # open here already, so inspected already; Store.open words the refusal
        raise (_from_lmdb(path, "reading data.mdb", exc, access="read") or StoreError(
            f"LMDB cannot read the store at {path}: {exc}; check that it is an engine store, "
            f"or pass another --db")) from exc
    try:
        with env.begin() as txn:
            problem = _foreign_problem(path, txn.cursor())
            if problem is not None:
                raise StoreError(problem)
            if txn.get(b"meta") is None:
                return  # a new environment: the writer creates the databases
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(_META_SCHEMA, db=meta)
            if raw is not None:
                problem = _schema_problem(path, _u64(raw))
                if problem is not None:
                    raise StoreError(problem)
    except lmdb.Error as exc:
        raise StoreError(
            f"LMDB cannot read the store at {path}: {exc}; it is not an engine store (or is "
            f"damaged): pass another --db"
        ) from exc
    finally:
        env.close()


@dataclass(slots=True)
class _Dbs:
    """The handles of a store's databases in one environment (package docstring)."""

    meta: lmdb._Database
    tracks: lmdb._Database
    paths: lmdb._Database
    keys: lmdb._Database
    fingerprints: lmdb._Database
    failures: lmdb._Database
    atime: lmdb._Database
    lru: lmdb._Database


def _open_dbs(env: lmdb.Environment, path: str, *, readonly: bool) -> _Dbs:
    """Open the databases of the environment at ``path``; the writer creates what is missing.

    Parameters
    ----------
    env : lmdb.Environment
        The store's environment, just opened.
    path : str
        The store's directory, for the error messages.
    readonly : bool
        ``True``: a reader, which retries while the writer resizes the map. ``False``: the
        writer, which initialises ``meta`` in a new store (doubling the map when it is full).

    Returns
    -------
    _Dbs

    Raises
    ------
    StoreError
        When the store has another schema, no schema, or (for a reader) not the databases.
    lmdb.Error
        Other LMDB failures, for the caller to word.
    """

    def check_schema(found: int | None) -> None:
        problem = _schema_problem(path, found)
        if problem is not None:
            raise StoreError(problem)

    if readonly:
        for _ in range(8):
            try:
                handles = [env.open_db(name.encode("ascii"), create=False)
                           for name in _DB_NAMES]
                break
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.NotFoundError as exc:
                raise StoreError(
                    f"the store at {path} lacks the engine's databases "
                    f"({', '.join(_DB_NAMES)}): it is not an engine store, or no writer has "
                    f"opened it yet; pass another --db"
                ) from exc
        else:
            raise StoreError(f"the store at {path} keeps being resized by its writer; retry")
        dbs = _Dbs(*handles)
        while True:
            try:
                with env.begin() as txn:
                    raw = txn.get(_META_SCHEMA, db=dbs.meta)
                break
            except lmdb.MapResizedError:
                env.set_mapsize(0)
        check_schema(None if raw is None else _u64(raw))
        return dbs

    for _ in range(64):
        try:
            with env.begin(write=True) as txn:
                # _inspect_existing refused a foreign environment before the lock was taken;
                # this is the same rule inside the transaction (aborted: nothing is written)
                problem = _foreign_problem(path, txn.cursor())
                if problem is not None:
                    raise StoreError(problem)
                handles = [env.open_db(name.encode("ascii"), txn=txn) for name in _DB_NAMES]
                dbs = _Dbs(*handles)
                raw = txn.get(_META_SCHEMA, db=dbs.meta)
                if raw is None:
                    if txn.stat(dbs.tracks)["entries"]:
                        check_schema(None)
                    txn.put(_META_SCHEMA, _ID.pack(SCHEMA_VERSION), db=dbs.meta)
                    txn.put(_META_NEXT_ID, _ID.pack(1), db=dbs.meta)
                    for name in (_META_TICK, _META_EVICTIONS, _META_FP_BYTES):
                        txn.put(name, _ID.pack(0), db=dbs.meta)
                else:
                    check_schema(_u64(raw))
                if txn.get(_META_STORE_ID, db=dbs.meta) is None:
                    txn.put(_META_STORE_ID, os.urandom(8), db=dbs.meta)
                txn.put(_META_FP_VERSION, _ID.pack(FINGERPRINT_VERSION), db=dbs.meta)
            return dbs
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)
    raise StoreError(f"the store at {path} could not be initialised: its map keeps filling; "
                     f"pass a larger map_size")
