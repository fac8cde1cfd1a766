package rollback_test

import (
	"testing"

	"github.com/scriptgen/scriptgen/internal/testenv"
)

// TestMain stops the package's redis-server, which testenv.RedisURL starts,
// when the tests end.
func TestMain(m *testing.M) { testenv.Main(m) }
