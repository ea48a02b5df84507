// Package vulcanbackup is the root of Vulcan Backup: see README.md. The
// binaries are ./worker and ./starter; this package holds only the test that
// checks the production docker-compose.yml.
package vulcanbackup
