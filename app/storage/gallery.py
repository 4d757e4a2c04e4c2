"""The gallery in the database: characters, their enrolled faces, and the faces' embeddings.

Every change bumps the "gallery" counter in the same transaction, so that each worker notices
it with one cheap query and re-reads the gallery (app/serving/live.py).
"""
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.storage import images, transactions
from app.storage.labels import clean_label, name_key
from app.storage.models import Character, Embedding, Face

COUNTER = "gallery"


def get_character(session, name):
    """The character row whose name equals `name` under labels.name_key (case and width), or None;
    the exact spelling first."""
    exact = session.scalar(select(Character).where(Character.name == name))
    if exact is not None:
        return exact
    key = name_key(name)
    return next((c for c in session.scalars(select(Character).order_by(Character.id)) if name_key(c.name) == key),
                None)


def _get_or_create(session, name):
    character = get_character(session, name)
    if character is not None:
        return character
    try:
        with session.begin_nested():  # another instance may add the same name at the same moment
            character = Character(name=name)
            session.add(character)
    except IntegrityError:
        character = get_character(session, name)
    return character


def add_faces(session, name, sha256s, source="upload", report_id=None):
    """Enrol stored pictures (by sha256) under `name`, creating the character; returns (row, new Face rows)."""
    name = clean_label(name, field="name")
    character = _get_or_create(session, name)
    have = set(session.scalars(select(Face.image_sha256).where(Face.character_id == character.id)))
    added = []
    for sha256 in sha256s:
        if sha256 in have:
            continue  # the same picture twice adds nothing
        face = Face(character_id=character.id, image_sha256=sha256, source=source, report_id=report_id)
        session.add(face)
        have.add(sha256)
        added.append(face)
    transactions.bump(session, COUNTER)
    session.flush()
    return character, added


def enrol(session, root, name, pngs):
    """Store PNG pictures (app/storage/images.py) and enrol them under `name`; returns (row, new Face rows)."""
    name = clean_label(name, field="name")
    shas = [images.store(session, root, png) for png in pngs]
    return add_faces(session, name, shas)


def face_count(session, character):
    """How many faces `character` has enrolled."""
    return int(session.scalar(select(func.count(Face.id)).where(Face.character_id == character.id)))


def remove(session, name):
    """Delete a character and its enrolled faces from the gallery; False if there was none."""
    character = get_character(session, clean_label(name, field="name"))
    if character is None:
        return False
    session.delete(character)
    transactions.bump(session, COUNTER)
    return True


def face_counts(session):
    """{name: enrolled faces} for every character of the gallery."""
    rows = session.execute(select(Character.name, func.count(Face.id))
                           .outerjoin(Face, Face.character_id == Character.id)
                           .group_by(Character.id, Character.name).order_by(Character.name))
    return {name: int(n) for name, n in rows}


def faces_with_embeddings(session, embedder):
    """[(face id, character name, image sha256, embedding bytes or None)] for every enrolled face."""
    rows = session.execute(
        select(Face.id, Character.name, Face.image_sha256, Embedding.vector)
        .join(Character, Face.character_id == Character.id)
        .outerjoin(Embedding, (Embedding.face_id == Face.id) & (Embedding.embedder == embedder))
        .order_by(Face.id))
    return [tuple(r) for r in rows]


def put_embeddings(session, embedder, vectors):
    """Store {face id: embedding bytes} under `embedder` (faces deleted meanwhile are skipped)."""
    alive = set(session.scalars(select(Face.id).where(Face.id.in_(list(vectors)))))
    for face_id, vector in vectors.items():
        if face_id in alive and session.get(Embedding, (face_id, embedder)) is None:
            try:
                with session.begin_nested():  # another worker may store the same one meanwhile
                    session.add(Embedding(face_id=face_id, embedder=embedder, vector=vector))
            except IntegrityError:
                pass


def faces_of(session, name, limit=None):
    """[(face id, image sha256, source)] of a character's enrolled faces, oldest first; None without one."""
    character = get_character(session, clean_label(name, field="name"))
    if character is None:
        return None
    query = select(Face.id, Face.image_sha256, Face.source).where(Face.character_id == character.id).order_by(Face.id)
    return [tuple(r) for r in session.execute(query.limit(limit) if limit else query)]


def face_sha256(session, face_id):
    """The picture sha256 of enrolled face `face_id`, or None."""
    return session.scalar(select(Face.image_sha256).where(Face.id == face_id))


def training_faces(session):
    """[(character name, image sha256)] of every enrolled face, for retraining the head."""
    rows = session.execute(select(Character.name, Face.image_sha256)
                           .join(Face, Face.character_id == Character.id).order_by(Face.id))
    return [tuple(r) for r in rows]
