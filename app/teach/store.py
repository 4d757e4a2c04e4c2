"""Teach sessions in the database: the groups a job found in an episode and what the operator did
with each (named, merged, faces dropped, discarded). Naming enrols a diverse handful of the
group's faces into the gallery (app/storage/gallery.py) in the same transaction; dropping an
enrolled face takes it out of the gallery again.
"""
import json
import secrets

import numpy as np
from sqlalchemy import delete, func, select

from app.i18n import _
from app.inference.gallery import normalise
from app.storage import gallery, images, transactions
from app.storage.models import Character, Face, TeachFace, TeachGroup, TeachSession
from app.teach.grouping import diverse, typical

# Faces enrolled per named group, chosen by `scripts/teach_bench.py --calibrate` on the val-b episode
# (other poses of the val characters): the count of 4, 8, 12, 16, 24 with which the app names the
# most of val-b's faces right (97.7%, 97.7%, 99.1%, 99.1%, 99.5%); fewer leave poses uncovered.
ENROL_FACES = 24
TYPICAL_FACES = 6  # faces shown on a group's card


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


def new_key():
    return "t" + secrets.token_urlsafe(12)


def create(s, name, job_id=None):
    """A new session (status "processing") for material called `name`."""
    row = TeachSession(key=new_key(), name=(name or "")[:200], status="processing", job_id=job_id, stats="{}")
    s.add(row)
    s.flush()
    return row


def by_key(s, key):
    row = s.scalar(select(TeachSession).where(TeachSession.key == key)) if key and len(key) <= 40 else None
    if row is None:
        raise NotFound(_("No such teach session."))
    return row


def store_result(s, root, session, result, embedder_key, stats):
    """Write a pipeline.Result into `session` (its pictures first, app/storage/images.py, then every row)
    and mark it ready."""
    from app.inference import imaging
    groups = {}
    for number in range(result.groups):
        groups[number] = TeachGroup(session_id=session.id, number=number + 1, status="open")
        s.add(groups[number])
    s.flush()
    for face in result.faces:
        sha256 = images.store(s, root, imaging.png_bytes(face.crop))
        s.add(TeachFace(session_id=session.id, group_id=groups[face.group].id if face.group >= 0 else None,
                        track=face.track, seconds=float(face.seconds), image_sha256=sha256, embedder=embedder_key,
                        vector=np.asarray(face.vector, "<f4").tobytes()))
    session.status = "ready"
    session.stats = json.dumps(stats)


def _group(s, session, number):
    row = s.scalar(select(TeachGroup).where(TeachGroup.session_id == session.id, TeachGroup.number == number))
    if row is None:
        raise NotFound(_("No group %(number)s in this teach session.", number=number))
    return row


def _faces(s, group_id, include_dropped=False):
    query = select(TeachFace).where(TeachFace.group_id == group_id)
    if not include_dropped:
        query = query.where(TeachFace.dropped == 0)
    return list(s.scalars(query.order_by(TeachFace.id)))


def _vectors(faces):
    return normalise(np.stack([np.frombuffer(f.vector, "<f4") for f in faces])) if faces else np.zeros((0, 1))


def describe(s, session, typical_count=TYPICAL_FACES):
    """The session as the operator page shows it: groups with counts and typical face ids."""
    out = {"id": session.key, "name": session.name, "status": session.status,
           "stats": json.loads(session.stats or "{}"), "groups": []}
    rows = list(s.scalars(select(TeachGroup).where(TeachGroup.session_id == session.id).order_by(TeachGroup.number)))
    for group in rows:
        if group.status == "merged":
            continue
        faces = _faces(s, group.id)
        order = typical(_vectors(faces), typical_count) if faces else []
        out["groups"].append({"number": group.number, "status": group.status, "name": group.name,
                              "faces": len(faces), "tracks": len({f.track for f in faces}),
                              "typical": [faces[i].id for i in order],
                              "enrolled": sum(1 for f in faces if f.enrolled_id is not None)})
    out["set_aside"] = int(s.scalar(select(func.count(TeachFace.id)).where(
        TeachFace.session_id == session.id, TeachFace.group_id.is_(None))) or 0)
    return out


def group_faces(s, session, number):
    """Every face of a group (dropped ones too), most typical first."""
    group = _group(s, session, number)
    faces = _faces(s, group.id, include_dropped=True)
    order = typical(_vectors(faces), len(faces)) if faces else []
    return [{"id": faces[i].id, "dropped": bool(faces[i].dropped), "enrolled": faces[i].enrolled_id is not None,
             "seconds": round(faces[i].seconds, 2)} for i in order]


def face(s, session, face_id):
    row = s.get(TeachFace, face_id)
    if row is None or row.session_id != session.id:
        raise NotFound(_("No such face in this teach session."))
    return row


def name_group(s, root, session, number, name, current_embedder=None):
    """Name a group: enrol a diverse handful of its faces under `name` (a new or existing character,
    matched as the gallery matches names). Returns (character name, faces enrolled now)."""
    group = _group(s, session, number)
    if group.status in ("discarded", "merged"):
        raise Conflict(_("This group was discarded or merged into another; it cannot change."))
    faces = _faces(s, group.id)
    if not faces:
        raise Conflict(_("Every face of this group was dropped."))
    chosen = [faces[i] for i in diverse(_vectors(faces), ENROL_FACES)]
    if group.status == "named" and group.name:
        _unenrol(s, [f for f in faces if f.enrolled_id is not None])
    character, added = gallery.add_faces(s, name, [f.image_sha256 for f in chosen], source="teach")
    by_sha = {f.image_sha256: f for f in chosen}
    for row in added:  # only faces this naming added: a picture enrolled before stays the operator's
        by_sha[row.image_sha256].enrolled_id = row.id
    if current_embedder is not None:  # the same vectors the live gallery would compute
        gallery.put_embeddings(s, current_embedder, {row.id: by_sha[row.image_sha256].vector for row in added
                                                     if by_sha[row.image_sha256].embedder == current_embedder})
    group.status, group.name = "named", character.name
    return character.name, len(added)


def _unenrol(s, faces):
    """Take these faces' enrolments out of the gallery; a character left with no face goes too."""
    ids = [f.enrolled_id for f in faces if f.enrolled_id is not None]
    if ids:
        owners = set(s.scalars(select(Face.character_id).where(Face.id.in_(ids))))
        s.execute(delete(Face).where(Face.id.in_(ids)))
        for character_id in owners:
            if not s.scalar(select(func.count(Face.id)).where(Face.character_id == character_id)):
                s.execute(delete(Character).where(Character.id == character_id))
        transactions.bump(s, gallery.COUNTER)
    for f in faces:
        f.enrolled_id = None


def merge(s, root, session, number, into, current_embedder=None):
    """Move every face of group `number` into group `into`; a named target enrols from the union again."""
    if number == into:
        raise Conflict(_("A group cannot be merged into itself."))
    source, target = _group(s, session, number), _group(s, session, into)
    for group in (source, target):
        if group.status in ("discarded", "merged"):
            raise Conflict(_("This group was discarded or merged into another; it cannot change."))
    if source.status == "named":
        _unenrol(s, _faces(s, source.id, include_dropped=True))
    for f in _faces(s, source.id, include_dropped=True):
        f.group_id = target.id
    source.status, source.name = "merged", None
    s.flush()
    if target.status == "named":
        name_group(s, root, session, into, target.name, current_embedder)


def drop_face(s, session, face_id, dropped=True):
    """Mark a face as not this group's (or take that back); an enrolled face leaves the gallery."""
    row = face(s, session, face_id)
    row.dropped = int(bool(dropped))
    if dropped:
        _unenrol(s, [row])
    return row


def discard(s, session, number):
    """A group of extras or of no face: set aside for good, anything it enrolled taken out."""
    group = _group(s, session, number)
    _unenrol(s, _faces(s, group.id, include_dropped=True))
    group.status, group.name = "discarded", None


def remove(s, session):
    """Delete a session and its rows (the gallery keeps what was enrolled)."""
    s.delete(session)


def remove_for_job(s, job_id):
    """Delete the session of job `job_id`, if any (its job never started or was cancelled)."""
    row = s.scalar(select(TeachSession).where(TeachSession.job_id == job_id))
    if row is not None:
        s.delete(row)


def list_sessions(s):
    return list(s.scalars(select(TeachSession).order_by(TeachSession.created.desc(), TeachSession.id.desc())))
