package sqlite

// CheckpointPasses counts the checkpointer's passes so far.
func (s *Store) CheckpointPasses() int64 { return s.ckpt.passes.Load() }
