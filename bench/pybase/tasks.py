"""The job of the Python peer: the noop generation, saved as the project's next episode
exactly once, whether it runs in an RQ work horse or as a FastAPI background task."""

from sqlalchemy import text

import db


def run_job(job_id):
    with db.engine.begin() as conn:
        job = conn.execute(text("SELECT project_id, payload, status FROM pb_jobs WHERE id = :id FOR UPDATE"),
                           {"id": job_id}).first()
        if job is None or job.status == "succeeded":
            return  # a redelivery of a finished job saves nothing twice
        conn.execute(text("UPDATE pb_jobs SET status = 'running', attempts = attempts + 1 WHERE id = :id"),
                     {"id": job_id})
    # The noop generator: the script is the episode's title, as scriptgen's noop writes it.
    content = "# " + str(job.payload.get("title", ""))
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO pb_projects (id) VALUES (:p) ON CONFLICT (id) DO NOTHING"),
                     {"p": job.project_id})
        number = conn.execute(text("UPDATE pb_projects SET next_episode = next_episode + 1 WHERE id = :p "
                                   "RETURNING next_episode - 1"), {"p": job.project_id}).scalar_one()
        conn.execute(text("INSERT INTO pb_episodes (project_id, number, job_id, content) VALUES (:p, :n, :j, :c)"),
                     {"p": job.project_id, "n": number, "j": job_id, "c": content})
        conn.execute(text("UPDATE pb_jobs SET status = 'succeeded', finished_at = now() WHERE id = :id"),
                     {"id": job_id})
