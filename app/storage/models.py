"""Database tables (SQLAlchemy 2 ORM): characters and their enrolled faces, reports and their
review, model versions, background jobs, and the version counters every worker polls.

Images are never stored in the database: rows hold the sha256 of a PNG file under
`<REPORT_DIR>/images/` (app/storage/images.py). The schema is created and changed only by the
Alembic migrations in app/storage/migrations/; keep the two in step.
"""
import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME_LENGTH = 100  # labels: 1-100 characters (app/storage/labels.py)


def utcnow():
    """Timezone-aware UTC now (stored as UTC by both SQLite and PostgreSQL)."""
    return datetime.datetime.now(datetime.UTC)


def iso(moment):
    """ISO 8601 in UTC with its offset (SQLite hands datetimes back without one), or None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds")


class Base(DeclarativeBase):
    pass


class Character(Base):
    """A name the gallery can answer, with its enrolled faces."""
    __tablename__ = "characters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    faces: Mapped[list["Face"]] = relationship(back_populates="character", cascade="all, delete-orphan",
                                               passive_deletes=True)


class Face(Base):
    """One enrolled face picture of a character (from an operator's upload or an accepted report)."""
    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("character_id", "image_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    image_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # "upload" or "report"
    report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    character: Mapped[Character] = relationship(back_populates="faces")


class Embedding(Base):
    """A face's embedding under one embedder (backbone weights + projection), computed once."""
    __tablename__ = "embeddings"

    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    embedder: Mapped[str] = mapped_column(String(200), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, L2-normalised


class Report(Base):
    """A wrong-label report: pending until an operator accepts (it joins the gallery) or rejects it."""
    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_status_created", "status", "created"),
                      # One report per picture from the API, enforced by the database (migration 0002).
                      Index("uq_reports_api_image", "image_sha256", unique=True,
                            sqlite_where=text("source = 'api'"), postgresql_where=text("source = 'api'")))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # 20261122T010203Z-<12 hex>
    label: Mapped[str] = mapped_column(String(NAME_LENGTH))
    predicted: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending/accepted/rejected
    decided: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_label: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    # "api", "file" (imported), or "duplicate" (a second row of one picture from before migration 0002)
    source: Mapped[str] = mapped_column(String(10), default="api")


class ModelVersion(Base):
    """A classifier trained here (retraining): live, superseded, rolled back or refused by the gate."""
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="classifier")
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # live/superseded/rolled_back/refused
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    metrics: Mapped[str] = mapped_column(Text, default="{}")  # JSON: candidate vs live figures
    note: Mapped[str] = mapped_column(Text, default="")


class Job(Base):
    """A background job (retraining, a batch of cutouts) and its progress, written by whoever runs it."""
    __tablename__ = "jobs"
    __table_args__ = (Index("uq_jobs_key", "key", unique=True), Index("ix_jobs_status_client", "status", "client"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued/running/done/refused/failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(Text, default="{}")
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Queued jobs (app/jobs/, migration 0004): the public id a client holds, who sent it (limits per
    # client), attempts so far, who runs it ("host|pid|start") and when it last said so.
    key: Mapped[str | None] = mapped_column(String(40), nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    options: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    pictures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    code: Mapped[str | None] = mapped_column(String(40), nullable=True)  # why it failed, stable
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {msgid, params}: translatable


class JobFile(Base):
    """A batch job's picture or result, kept in the database when it is PostgreSQL (app/jobs/files.py)."""
    __tablename__ = "job_files"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)  # in/0000, out/0000.png
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Picture(Base):
    """A stored picture (report crop, enrolled face) named by its sha256, kept in the database when
    it is PostgreSQL so that every app instance reads it (app/storage/images.py); files otherwise."""
    __tablename__ = "pictures"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ModelFile(Base):
    """A file of a retrained model version (card, weights, figures), kept in the database when it is
    PostgreSQL; each instance writes the folder out locally before loading it (model_versions.py)."""
    __tablename__ = "model_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Counter(Base):
    """Version counters: a worker re-reads the gallery or the live model only when one moves."""
    __tablename__ = "counters"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class OperatorSession(Base):
    """A signed-in operator browser: the sha256 of the secret its cookie holds; deleted at sign-out."""
    __tablename__ = "operator_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), index=True)


class TeachSession(Base):
    """Teaching a cast from one episode (app/teach/store.py): its groups of faces, named one by one;
    it lives until deleted, so an operator can come back to it."""
    __tablename__ = "teach_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)  # public id
    name: Mapped[str] = mapped_column(String(200), default="")  # the material's file name
    status: Mapped[str] = mapped_column(String(12), default="processing")  # processing/ready/failed
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    created: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stats: Mapped[str] = mapped_column(Text, default="{}")  # JSON: frames, tracks, faces, seconds


class TeachGroup(Base):
    """One group of a teach session: open, named (enrolled), discarded, or merged into another."""
    __tablename__ = "teach_groups"
    __table_args__ = (UniqueConstraint("session_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("teach_sessions.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1.. within the session, largest group first
    status: Mapped[str] = mapped_column(String(10), default="open")  # open/named/discarded/merged
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)


class TeachFace(Base):
    """A face crop of a teach session (its picture under <REPORT_DIR>/images/, like enrolled faces)."""
    __tablename__ = "teach_faces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("teach_sessions.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("teach_groups.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)  # None: set aside
    track: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    image_sha256: Mapped[str] = mapped_column(String(64))
    embedder: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian, L2-normalised
    dropped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The gallery face it was enrolled as, while it is enrolled.
    enrolled_id: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="SET NULL"), nullable=True)
