package server

import "testing"

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8002": true,
		"127.9.9.9:1":    true,
		"[::1]:8002":     true,
		"localhost:8002": true,
		":8002":          false,
		"0.0.0.0:8002":   false,
		"[::]:8002":      false,
		"10.0.0.5:8002":  false,
		"example.com:80": false,
		"nonsense":       false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
