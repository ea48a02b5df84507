//go:build !nodevserver

package main

import (
	"context"

	"github.com/project-vulcan/vulcan-backup/internal/devserver"
)

// startEmbedded starts the embedded Temporal server and Web UI (--dev).
func startEmbedded(ctx context.Context, o embeddedOptions) (embeddedServer, error) {
	return devserver.Start(ctx, devserver.Options{DBFile: o.DBFile, Address: o.Address, Namespace: o.Namespace, UIPort: o.UIPort})
}
