//go:build race

package backgroundtasks_test

// raceEnabled: under the race detector the fairness test runs a tenth of its
// load (the documents' chunking alone took minutes).
const raceEnabled = true
