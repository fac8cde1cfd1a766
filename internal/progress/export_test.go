package progress

// KeptFrames is how many of a job's last events a feed keeps encoded.
const KeptFrames = keptFrames

// FramesKept tells, for a watched job, the seq after which the feed keeps
// its events encoded and how many it keeps.
func (b *Broker) FramesKept(jobID string) (base int64, n int) {
	b.mu.Lock()
	f := b.feeds[jobID]
	b.mu.Unlock()
	if f == nil {
		return 0, 0
	}
	snap := f.snap.Load()
	return snap.base, len(snap.frames)
}
