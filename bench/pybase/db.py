"""The database of the Python peer: one SQLAlchemy engine per process, and its schema."""

import json
import os

from sqlalchemy import create_engine, text

# A pool per process, as a FastAPI app or an RQ work horse would have it.
engine = create_engine(os.environ["DATABASE_URL"], pool_size=20, max_overflow=10, pool_pre_ping=False, future=True)


def dumps(value):
    return json.dumps(value, ensure_ascii=False)


SCHEMA = """
CREATE TABLE IF NOT EXISTS pb_jobs (
    id uuid PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    project_id text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS pb_jobs_project ON pb_jobs (project_id, status);
CREATE TABLE IF NOT EXISTS pb_projects (
    id text PRIMARY KEY,
    next_episode int NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS pb_episodes (
    project_id text NOT NULL,
    number int NOT NULL,
    job_id uuid NOT NULL UNIQUE REFERENCES pb_jobs (id),
    content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, number)
);
"""


def migrate():
    with engine.begin() as conn:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(text(stmt))


if __name__ == "__main__":
    migrate()
