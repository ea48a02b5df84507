// Package archive streams tar.gz backups: it creates them from a directory tree
// while hashing every file, verifies them against their manifest, and extracts
// them safely into a staging directory.
//
// The format is a plain gzip-compressed tar, so `tar -xzf` restores it by hand.
// Compression runs on every core (pgzip); memory does not grow with the data.
//
// The package knows nothing of Temporal: progress is reported through a
// callback and errors that retrying cannot fix are marked with ErrIntegrity or
// ErrUnsafe.
package archive
