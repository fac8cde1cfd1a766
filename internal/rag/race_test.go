//go:build race

package rag_test

// raceDetector: the tests run under the race detector, which slows SQLite
// (Go code, instrumented) about tenfold.
const raceDetector = true
