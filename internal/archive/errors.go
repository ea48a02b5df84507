package archive

import (
	"errors"
	"fmt"
)

// ErrIntegrity marks an archive whose content does not match its manifest:
// a checksum or size mismatch, a truncated or corrupt stream, a missing entry.
var ErrIntegrity = errors.New("integrity check failed")

// ErrUnsafe marks an archive entry that could write outside the target or is
// of a kind a backup never holds: absolute or `..` paths, links that escape,
// hard links, devices, FIFOs, duplicates, entries not in the manifest.
var ErrUnsafe = errors.New("unsafe archive entry")

// EntryError says which entry failed and why.
type EntryError struct {
	Kind   error  // ErrIntegrity or ErrUnsafe
	Path   string // the entry, or "" for the archive as a whole
	Reason string
}

func (e *EntryError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%v: %s", e.Kind, e.Reason)
	}
	return fmt.Sprintf("%v: %s: %s", e.Kind, e.Path, e.Reason)
}

// Unwrap lets errors.Is match ErrIntegrity or ErrUnsafe.
func (e *EntryError) Unwrap() error { return e.Kind }

func integrity(path, format string, args ...any) error {
	return &EntryError{Kind: ErrIntegrity, Path: path, Reason: fmt.Sprintf(format, args...)}
}

func unsafeEntry(path, format string, args ...any) error {
	return &EntryError{Kind: ErrUnsafe, Path: path, Reason: fmt.Sprintf(format, args...)}
}

// DamagedPreviousError is returned by Create when a member of the previous
// backup failed its check after part of a large file had been copied from
// it: the archive written so far cannot be mended and is to be written
// again without copying (CreateFile does so).
type DamagedPreviousError struct {
	Backup string // the previous backup's id
	Path   string // the file whose piece failed
	Err    error
}

func (e *DamagedPreviousError) Error() string {
	return fmt.Sprintf("the previous backup is damaged under %s: %v", e.Path, e.Err)
}

func (e *DamagedPreviousError) Unwrap() error { return e.Err }
