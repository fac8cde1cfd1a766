package e2e

import (
	"strings"
	"testing"
)

// TestFailureLog: a failed test shows a process's warnings, or its crash,
// in a few lines, not the tail of its INFO lines.
func TestFailureLog(t *testing.T) {
	info := "time=t level=INFO msg=\"Job succeeded\"\n"
	quiet := strings.Repeat(info, 100)
	if got := failureLog(quiet); got != "100 lines, none above INFO (E2E_LOGS=full shows them)" {
		t.Fatalf("quiet log: %q", got)
	}
	warned := quiet + "time=t level=WARN msg=\"Could not refresh the worker setting\"\n" + info
	if got := failureLog(warned); !strings.HasSuffix(got, `level=WARN msg="Could not refresh the worker setting"`) || strings.Contains(got, "Job succeeded") {
		t.Fatalf("log with a warning: %q", got)
	}
	crashed := quiet + "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n"
	if got := failureLog(crashed); !strings.Contains(got, "from line 101:\npanic: boom\n\ngoroutine 1 [running]:") {
		t.Fatalf("crashed log: %q", got)
	}
}
