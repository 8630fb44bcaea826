"""The app's shared, durable state: walkthroughs, rooms, blind-test sides and votes.

One small module over SQLAlchemy Core. By default a SQLite file in the cache directory
(``<cache dir>/state.sqlite3``, WAL mode, zero setup); when ``RERANK_DATABASE_URL`` is set
(``postgresql://user@host:port/db``), PostgreSQL through psycopg 3, so several app
replicas share one room. The schema is versioned (table ``schema_version``); a database
written by a newer version of the app is refused rather than guessed at.

What lives here:

* walkthroughs: their canonical JSON under the content-addressed id (the JSON format is
  still the export/import format; parsing it is :mod:`core.present.walkthrough`'s job);
* rooms: one audience following one walkthrough. The presenter's token is stored as its
  sha256 only; the room holds the current step, whether the room is in blind mode,
  whether voting is open, and whether the sides were revealed;
* sides: one left/right assignment per walkthrough and step, drawn once and the same for
  every viewer, the projector and every replica;
* votes: one per voter per room and step (changeable), each with the A and B labels of
  its own step, so a tally never borrows another step's systems.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.models.errors import CoreError
from core.models.paths import cache_dir

SCHEMA_VERSION = 1
DATABASE_ENV = "RERANK_DATABASE_URL"
CHOICES = ("left", "right", "tie")
MAX_NAME = 60
_ROOM_ID = re.compile(r"^[0-9a-f]{12}\Z")
_WALKTHROUGH_ID = re.compile(r"^[0-9a-f]{16}\Z")


class StateStoreError(CoreError):
    """The state store refused a request (unknown room, not the presenter, voting
    closed, a bad vote) or cannot be opened; one line a person can act on."""


metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
walkthroughs = sa.Table(
    "walkthroughs",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)
rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("id", sa.String(12), primary_key=True),
    sa.Column("walkthrough_id", sa.String(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("step", sa.Integer, nullable=False, default=0),
    sa.Column("blind", sa.Boolean, nullable=False, default=False),
    sa.Column("voting_open", sa.Boolean, nullable=False, default=True),
    sa.Column("revealed", sa.Boolean, nullable=False, default=False),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("updated", sa.Float, nullable=False),
)
sides = sa.Table(
    "sides",
    metadata,
    sa.Column("walkthrough_id", sa.String(16), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("a_left", sa.Boolean, nullable=False),
)
votes = sa.Table(
    "votes",
    metadata,
    sa.Column("room_id", sa.String(12), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("voter", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME), nullable=False, default=""),
    sa.Column("choice", sa.String(8), nullable=False),
    sa.Column("a_left", sa.Boolean, nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("a_label", sa.Text, nullable=False),
    sa.Column("b_label", sa.Text, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)
sa.Index("votes_by_room", votes.c.room_id, votes.c.step)


@dataclass(frozen=True)
class Room:
    """A room as stored: what every page in it shows."""

    id: str
    walkthrough_id: str
    step: int
    blind: bool
    voting_open: bool
    revealed: bool
    version: int


@dataclass(frozen=True)
class StoredVote:
    """One voter's vote on one step of a room, with that step's systems and sides."""

    room_id: str
    step: int
    voter: str
    name: str
    choice: str
    a_left: bool
    query: str
    a_label: str
    b_label: str
    updated: float


def database_url() -> str:
    """``RERANK_DATABASE_URL`` (a ``postgresql://`` URL uses psycopg 3), else the SQLite
    file in the cache directory."""
    url = os.environ.get(DATABASE_ENV, "").strip()
    if not url:
        return f"sqlite:///{cache_dir() / 'state.sqlite3'}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def token_hash(token: str) -> str:
    """sha256 of a presenter token (what the store keeps)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_room_id(value: object) -> bool:
    """True for a well-formed room id (12 lowercase hex digits)."""
    return isinstance(value, str) and bool(_ROOM_ID.match(value))


class StateStore:
    """Typed access to the shared state; one per database URL (see :func:`open_store`).
    Thread-safe: every call takes its own connection from the engine's pool."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = _engine(self.url)
        self._migrate()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    # --- schema ------------------------------------------------------------------------

    def _migrate(self) -> None:
        try:
            for attempt in range(5):
                try:
                    metadata.create_all(self.engine, checkfirst=True)
                    break
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    # another replica created the tables at the same moment
                    if attempt == 4:
                        raise
                    time.sleep(0.2)
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
                if found is None:
                    conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                elif found > SCHEMA_VERSION:
                    raise StateStoreError(
                        f"the state database has schema version {found}; this app knows "
                        f"up to {SCHEMA_VERSION} (upgrade the app or use another database)"
                    )
        except sa.exc.SQLAlchemyError as exc:
            raise StateStoreError(f"cannot open the state database: {_short(exc)}") from None

    def version(self) -> int:
        """The schema version stored in the database."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar())

    # --- walkthroughs ------------------------------------------------------------------

    def put_walkthrough(self, walkthrough_id: str, digest: str, body: str) -> None:
        """Store a walkthrough's canonical JSON under its id (idempotent)."""
        if not _WALKTHROUGH_ID.match(walkthrough_id) or not digest.startswith(walkthrough_id):
            raise StateStoreError("a walkthrough id is the first 16 hex digits of its digest")
        row = {"id": walkthrough_id, "digest": digest, "body": body, "created": time.time()}
        with self._begin() as conn:
            self._insert_ignore(conn, walkthroughs, row, ["id"])

    def get_walkthrough(self, walkthrough_id: str) -> str | None:
        """The stored JSON of a walkthrough, re-hashed (a damaged row is None)."""
        with self._connect() as conn:
            row = conn.execute(
                sa.select(walkthroughs.c.digest, walkthroughs.c.body).where(
                    walkthroughs.c.id == walkthrough_id
                )
            ).first()
        if row is None or hashlib.sha256(row.body.encode()).hexdigest() != row.digest:
            return None
        return row.body

    # --- rooms ------------------------------------------------------------------------

    def create_room(self, walkthrough_id: str) -> tuple[str, str]:
        """A new room on a stored walkthrough; ``(room id, presenter token)``. The token
        is returned once and stored only as its sha256."""
        if self.get_walkthrough(walkthrough_id) is None:
            raise StateStoreError(f"walkthrough {walkthrough_id} is not stored")
        room_id, token = secrets.token_hex(6), secrets.token_urlsafe(24)
        with self._begin() as conn:
            conn.execute(
                rooms.insert().values(
                    id=room_id,
                    walkthrough_id=walkthrough_id,
                    token_sha256=token_hash(token),
                    step=0,
                    blind=False,
                    voting_open=True,
                    revealed=False,
                    version=0,
                    updated=time.time(),
                )
            )
        return room_id, token

    def get_room(self, room_id: str) -> Room:
        """The room; :class:`StateStoreError` if the id is malformed or unknown."""
        if not is_room_id(room_id):
            raise StateStoreError("not a room id (12 hex digits, from a shared link)")
        with self._connect() as conn:
            row = conn.execute(sa.select(rooms).where(rooms.c.id == room_id)).first()
        if row is None:
            raise StateStoreError(f"room {room_id} is not on this server")
        return Room(
            row.id,
            row.walkthrough_id,
            row.step,
            bool(row.blind),
            bool(row.voting_open),
            bool(row.revealed),
            row.version,
        )

    def is_presenter(self, room_id: str, token: str | None) -> bool:
        """Whether ``token`` is the room's presenter token (constant-time compare)."""
        if not token or not is_room_id(room_id):
            return False
        with self._connect() as conn:
            stored = conn.execute(
                sa.select(rooms.c.token_sha256).where(rooms.c.id == room_id)
            ).scalar()
        return stored is not None and hmac.compare_digest(stored, token_hash(token))

    def update_room(self, room_id: str, token: str | None, **changes: Any) -> Room:
        """Change the room's ``step``, ``blind``, ``voting_open`` or ``revealed``: the
        presenter only (:class:`StateStoreError` for anyone else)."""
        allowed = {"step", "blind", "voting_open", "revealed"}
        if not changes or set(changes) - allowed:
            raise StateStoreError(f"a room change is one of {sorted(allowed)}")
        if not self.is_presenter(room_id, token):
            raise StateStoreError("only the presenter can change the room")
        if "step" in changes:
            changes["step"] = max(0, int(changes["step"]))
        with self._begin() as conn:
            conn.execute(
                rooms.update()
                .where(rooms.c.id == room_id)
                .values(**changes, version=rooms.c.version + 1, updated=time.time())
            )
        return self.get_room(room_id)

    # --- sides and votes ---------------------------------------------------------------

    def a_is_left(self, walkthrough_id: str, step: int) -> bool:
        """Whether A is the left list on ``step`` of the walkthrough: drawn once at random,
        then the same for everyone. Read first: every page run asks, only the first
        one for a step writes."""
        where = (sides.c.walkthrough_id == walkthrough_id, sides.c.step == step)
        with self._connect() as conn:
            found = conn.execute(sa.select(sides.c.a_left).where(*where)).scalar()
        if found is not None:
            return bool(found)
        with self._begin() as conn:
            self._insert_ignore(
                conn,
                sides,
                {"walkthrough_id": walkthrough_id, "step": step, "a_left": secrets.randbits(1)},
                ["walkthrough_id", "step"],
            )
            found = conn.execute(
                sa.select(sides.c.a_left).where(
                    sides.c.walkthrough_id == walkthrough_id, sides.c.step == step
                )
            ).scalar()
        return bool(found)

    def cast_vote(
        self,
        room_id: str,
        step: int,
        voter: str,
        choice: str,
        *,
        query: str,
        a_label: str,
        b_label: str,
        name: str = "",
    ) -> StoredVote:
        """Record (or change) ``voter``'s vote on ``step``; the sides come from the store.
        Refused when the room is unknown, voting is closed or the sides were revealed."""
        if choice not in CHOICES:
            raise StateStoreError(f"a vote is left, right or tie, not {choice[:20]!r}")
        if not voter or len(voter) > 64:
            raise StateStoreError("a vote needs a voter id (up to 64 characters)")
        room = self.get_room(room_id)
        if not room.voting_open or room.revealed:
            raise StateStoreError("voting is closed in this room")
        a_left = self.a_is_left(room.walkthrough_id, step)
        row = {
            "room_id": room_id,
            "step": int(step),
            "voter": voter,
            "name": name.strip()[:MAX_NAME],
            "choice": choice,
            "a_left": a_left,
            "query": query,
            "a_label": a_label,
            "b_label": b_label,
            "updated": time.time(),
        }
        with self._begin() as conn:
            self._upsert(conn, votes, row, ["room_id", "step", "voter"])
        return StoredVote(**row)

    def votes(self, room_id: str, step: int | None = None) -> list[StoredVote]:
        """The room's votes (one step's when ``step`` is given), by step then time."""
        query = sa.select(votes).where(votes.c.room_id == room_id)
        if step is not None:
            query = query.where(votes.c.step == step)
        with self._connect() as conn:
            rows = conn.execute(query.order_by(votes.c.step, votes.c.updated)).all()
        return [StoredVote(**{**r._mapping, "a_left": bool(r.a_left)}) for r in rows]

    def vote_of(self, room_id: str, step: int, voter: str) -> StoredVote | None:
        """``voter``'s vote on ``step``, if any."""
        with self._connect() as conn:
            r = conn.execute(
                sa.select(votes).where(
                    votes.c.room_id == room_id, votes.c.step == step, votes.c.voter == voter
                )
            ).first()
        return None if r is None else StoredVote(**{**r._mapping, "a_left": bool(r.a_left)})

    def counts(self, room_id: str) -> dict[int, int]:
        """Votes per step of the room (steps without votes are absent)."""
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(votes.c.step, sa.func.count())
                .where(votes.c.room_id == room_id)
                .group_by(votes.c.step)
            ).all()
        return {int(s): int(n) for s, n in rows}

    # --- plumbing ----------------------------------------------------------------------

    def _connect(self):
        return _Guard(self.engine.connect)

    def _begin(self):
        return _Guard(self.engine.begin)

    def _insert_ignore(self, conn, table: sa.Table, row: dict, keys: list[str]) -> None:
        conn.execute(self._dialect_insert(table).values(**row).on_conflict_do_nothing())

    def _upsert(self, conn, table: sa.Table, row: dict, keys: list[str]) -> None:
        stmt = self._dialect_insert(table).values(**row)
        update = {k: v for k, v in row.items() if k not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))

    def _dialect_insert(self, table: sa.Table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise StateStoreError(f"unsupported database {self.dialect!r} (SQLite or PostgreSQL)")
        return insert(table)


class _Guard:
    """A connection context whose database errors become one-line StateStoreErrors."""

    def __init__(self, opener) -> None:
        self.opener = opener

    def __enter__(self):
        try:
            self.ctx = self.opener()
            return self.ctx.__enter__()
        except sa.exc.SQLAlchemyError as exc:
            raise StateStoreError(f"state database unavailable: {_short(exc)}") from None

    def __exit__(self, kind, value, tb):
        try:
            result = self.ctx.__exit__(kind, value, tb)
        except sa.exc.SQLAlchemyError as exc:
            raise StateStoreError(f"state database error: {_short(exc)}") from None
        if isinstance(value, sa.exc.SQLAlchemyError):
            raise StateStoreError(f"state database error: {_short(value)}") from None
        return result


def _short(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__]
    return re.sub(r"://[^@\s]*@", "://***@", lines[0])[:200]  # never a password


_ENGINES: dict[str, Engine] = {}
_STORES: dict[str, StateStore] = {}
_LOCK = threading.Lock()


def _engine(url: str) -> Engine:
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _make_engine(url)
        return _ENGINES[url]


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StateStoreError(f"{DATABASE_ENV} is not usable: {_short(exc)}") from None


def open_store(url: str | None = None) -> StateStore:
    """The shared :class:`StateStore` for ``url`` (default :func:`database_url`), created
    once per process and URL."""
    url = url or database_url()
    with _LOCK:
        store = _STORES.get(url)
    if store is None:
        store = StateStore(url)
        with _LOCK:
            store = _STORES.setdefault(url, store)
    return store
