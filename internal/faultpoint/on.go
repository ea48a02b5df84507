//go:build faultinject

package faultpoint

import (
	"fmt"
	"os"
)

// Hit halts the calling goroutine for good when name is the point selected
// by VULCAN_FAULTPOINT, after saying so on stderr. The rest of the process
// (heartbeats among it) goes on, so the test decides when it dies.
func Hit(name string) {
	if os.Getenv(Env) != name {
		return
	}
	fmt.Fprintf(os.Stderr, "FAULTPOINT %s reached\n", name)
	select {}
}
