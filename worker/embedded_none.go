//go:build nodevserver

package main

import (
	"context"
	"errors"
)

// startEmbedded refuses: this build leaves the embedded server out (the
// production image, which runs against its own Temporal server, is built
// with -tags nodevserver and is about 100 MB smaller in memory).
func startEmbedded(context.Context, embeddedOptions) (embeddedServer, error) {
	return nil, errors.New("--dev: this worker is built without the embedded Temporal server (-tags nodevserver); point TEMPORAL_ADDRESS at a server, or use `make build`")
}
