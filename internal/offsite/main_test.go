package offsite

import (
	"os"
	"testing"

	"github.com/project-vulcan/vulcan-backup/internal/testutil"
)

// TestMain points HTTP_PROXY at a proxy for virtual-host requests before any
// client reads it (net/http reads it once); requests to loopback addresses,
// every other test's, do not use it.
func TestMain(m *testing.M) {
	proxy := testutil.VirtualHostProxy()
	os.Setenv("HTTP_PROXY", proxy.URL)
	os.Setenv("NO_PROXY", "")
	code := m.Run()
	proxy.Close()
	os.Exit(code)
}
