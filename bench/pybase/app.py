"""The stack scriptgen replaces, built the way a competent team would, as the peer of
issue 21's "ten times the stack it replaces" benchmark.

FastAPI + uvicorn, SQLAlchemy on PostgreSQL, RQ workers, and FastAPI's
BackgroundTasks as the fallback when the queue is off. It does the same job as
scriptgen's noop generation: an idempotent submission (Idempotency-Key), a job
row, and, when the job runs, an episode with the project's next number, saved
exactly once. It answers the routes bench/submit uses, with the same shapes:

    POST /api/generation                      202 {"job_id", "status"}
    GET  /api/projects/{project}/episodes/{n} 200 or 404
    GET  /api/projects/{project}              {"jobs": {"succeeded": n, ...}}

Settings (environment): DATABASE_URL (SQLAlchemy URL; the schema comes from
PGOPTIONS or search_path), REDIS_URL, MODE=rq|background_tasks.

Debian's packages only (python3-fastapi, python3-uvicorn, python3-rq,
python3-sqlalchemy, python3-psycopg2): this machine reaches no PyPI.
"""

import os
import uuid

from fastapi import BackgroundTasks, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel
from redis import Redis
from rq import Queue
from sqlalchemy import text

import db
import tasks

MODE = os.environ.get("MODE", "rq")

app = FastAPI()
queue = Queue("generation", connection=Redis.from_url(os.environ["REDIS_URL"])) if MODE == "rq" else None


class GenerationRequest(BaseModel):
    project_id: str
    episode_data: dict


@app.post("/api/generation", status_code=202)
def submit(req: GenerationRequest, background: BackgroundTasks,
           idempotency_key: str | None = Header(default=None)):
    if not req.project_id:
        raise HTTPException(status_code=400, detail="project_id is required")
    job_id = str(uuid.uuid4())
    with db.engine.begin() as conn:
        row = conn.execute(text(
            "INSERT INTO pb_jobs (id, idempotency_key, project_id, payload, status) "
            "VALUES (:id, :key, :project, CAST(:payload AS jsonb), 'queued') "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"),
            {"id": job_id, "key": idempotency_key or job_id, "project": req.project_id,
             "payload": db.dumps(req.episode_data)}).first()
        if row is None:
            # A retry of a submission already accepted: the same job, not a new one.
            existing = conn.execute(text("SELECT id, status FROM pb_jobs WHERE idempotency_key = :key"),
                                    {"key": idempotency_key}).one()
            return {"job_id": str(existing.id), "status": existing.status}
    # Enqueued after the commit, so a worker never looks for a row that isn't there.
    if queue is not None:
        queue.enqueue(tasks.run_job, job_id, job_id=job_id, result_ttl=0)
    else:
        background.add_task(tasks.run_job, job_id)
    return {"job_id": job_id, "status": "queued"}


@app.get("/api/projects/{project}/episodes/{number}")
def episode(project: str, number: int):
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT job_id, content FROM pb_episodes WHERE project_id = :p AND number = :n"),
                           {"p": project, "n": number}).first()
    if row is None:
        return Response(status_code=404, content='{"error":"no such episode"}', media_type="application/json")
    return {"project_id": project, "number": number, "job_id": str(row.job_id), "content": row.content}


@app.get("/api/projects/{project}")
def project(project: str):
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) AS n FROM pb_jobs WHERE project_id = :p GROUP BY status"),
                            {"p": project}).all()
    return {"project_id": project, "jobs": {r.status: r.n for r in rows}}


@app.get("/health")
def health():
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}
