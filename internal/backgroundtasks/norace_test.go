//go:build !race

package backgroundtasks_test

const raceEnabled = false
