package store

import (
	"context"
	"fmt"
)

// ProjectDeletion counts what DeleteProject removed.
type ProjectDeletion struct {
	Jobs      int64 `json:"jobs"`
	Episodes  int64 `json:"episodes"`
	Documents int64 `json:"documents"`
}

// DeleteProject removes everything of one project — its jobs with their
// events and scripts, episodes and counter, documents and chunks, and its
// jobs' migration_failed entries — in one transaction. It exists for the
// reserved project `scriptgen verify` works in (job.VerifyProject), which
// must leave nothing behind; writers' projects are never deleted. A run of the
// project still under way loses its lease with its row, and its writes are
// dropped as stale.
func (s *SQL) DeleteProject(ctx context.Context, projectID string) (ProjectDeletion, error) {
	var d ProjectDeletion
	err := s.inTx(ctx, func(tx *Tx) error {
		ofJobs := `(SELECT id FROM jobs WHERE project_id = ?)`
		steps := []struct {
			q   string
			out *int64
		}{
			{`DELETE FROM job_events WHERE job_id IN ` + ofJobs, nil},
			{`DELETE FROM job_script_parts WHERE job_id IN ` + ofJobs, nil},
			{`DELETE FROM migration_failed WHERE job_id IN ` + ofJobs, nil},
			{`DELETE FROM document_chunks WHERE project_id = ?`, nil},
			{`DELETE FROM documents WHERE project_id = ?`, &d.Documents},
			{`DELETE FROM episodes WHERE project_id = ?`, &d.Episodes},
			{`DELETE FROM project_counters WHERE project_id = ?`, nil},
			{`DELETE FROM jobs WHERE project_id = ?`, &d.Jobs},
		}
		for _, st := range steps {
			res, err := tx.ExecContext(ctx, s.Q(st.q), projectID)
			if err != nil {
				return err
			}
			if st.out != nil {
				*st.out, _ = res.RowsAffected()
			}
		}
		return nil
	})
	if err != nil {
		return ProjectDeletion{}, fmt.Errorf("delete project %s: %w", projectID, err)
	}
	return d, nil
}
