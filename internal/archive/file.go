package archive

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// CreateFile writes the archive of opts to a new file at path, around the
// page cache where the file system allows it, and fsyncs it. On failure the
// file is removed. If the previous backup turns out to be damaged where the
// archive cannot fall back on reading the file (DamagedPreviousError), the
// archive is written again reading every file, and the first warning says
// why.
func CreateFile(ctx context.Context, path string, opts CreateOptions) (*Result, error) {
	res, err := createFile(ctx, path, opts)
	var damaged *DamagedPreviousError
	if !errors.As(err, &damaged) {
		return res, err
	}
	opts.Previous = nil
	if res, err = createFile(ctx, path, opts); err != nil {
		return nil, err
	}
	res.Warnings = append([]manifest.Warning{{Path: damaged.Path,
		Message: fmt.Sprintf("not copied from the previous backup, every file read afresh: %v", damaged)}}, res.Warnings...)
	return res, nil
}

func createFile(ctx context.Context, path string, opts CreateOptions) (*Result, error) {
	f, err := fsutil.CreateDirect(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	res, err := Create(ctx, f, opts)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // #nosec G104 -- best-effort removal of a half-written archive; the error that matters is returned
		return nil, err
	}
	return res, nil
}
