// Package archive streams tar.gz backups: it creates them from a directory tree
// while hashing every file, verifies them against their manifest, and extracts
// them safely into a staging directory.
//
// The format is a plain gzip-compressed tar, so `tar -xzf` restores it by hand.
// The gzip stream is a series of independent members cut at file boundaries,
// whose headers carry their size (members.go, layout.go): compression and
// decompression both run on every core, and an unchanged file gives the same
// members from one backup to the next, which a backup copies from the
// previous archive instead of reading the file (reuse.go). Memory does not
// grow with the data.
//
// The package knows nothing of Temporal: progress is reported through a
// callback and errors that retrying cannot fix are marked with ErrIntegrity or
// ErrUnsafe.
package archive
