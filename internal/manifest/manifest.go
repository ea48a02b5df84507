// Package manifest defines the JSON manifest written beside every backup archive,
// and reads, writes and validates it.
//
// A manifest is the proof that a backup exists: it is written last, under a
// temporary name that is fsynced and renamed, once the archive has been read back
// and checked against it.
package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
)

// FormatVersion is the manifest format this code writes and the newest it
// reads. Format 2 adds the archive's member table (Members) and each entry's
// identity on disk (device, inode, mtime and ctime in nanoseconds); format 1
// manifests still read, and a backup after one reads every file.
const FormatVersion = 2

// Kind says why a backup was taken; retention treats emergency backups apart.
type Kind string

// The kinds of backup.
const (
	KindScheduled Kind = "scheduled"
	KindManual    Kind = "manual"
	KindEmergency Kind = "emergency"
	// KindUndo describes no backup but the copies an undo of a restore
	// swaps back (kept in the undo's staging directory): it has no archive,
	// and its files and database carry no checksums, only their layout and
	// row counts. It is never valid in the backup directory.
	KindUndo Kind = "undo"
)

// UndoDumpName is where an undo keeps the dump it reloads in place, in its
// staging directory.
const UndoDumpName = "undo-database.sql"

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	return k == KindScheduled || k == KindManual || k == KindEmergency
}

// Entry types recorded for every archived path.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Manifest describes one backup: what it holds and how to check it.
type Manifest struct {
	FormatVersion int       `json:"format_version"`
	ID            string    `json:"id"`
	Kind          Kind      `json:"kind"`
	CreatedAt     time.Time `json:"created_at"`
	// Paths are the backed-up paths, relative to the project root.
	Paths    []string  `json:"paths"`
	Archive  FileRef   `json:"archive"`
	Files    []Entry   `json:"files"`
	Database *Database `json:"database"`
	// DatabaseNote explains a missing database section (for example no DATABASE_URL).
	DatabaseNote string    `json:"database_note,omitempty"`
	Warnings     []Warning `json:"warnings,omitempty"`
	// TotalBytes is the sum of the sizes of every archived file, dump included:
	// the most extraction may write.
	TotalBytes  int64     `json:"total_bytes"`
	ToolVersion string    `json:"tool_version"`
	WorkflowID  string    `json:"workflow_id,omitempty"`
	RunID       string    `json:"run_id,omitempty"`
	DurationSec float64   `json:"duration_seconds"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	// Members describes the archive's gzip members (format 2).
	Members *Members `json:"members,omitempty"`
}

// FileRef names a file of the backup with its size and SHA-256.
type FileRef struct {
	// File is the path relative to the backup directory.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Entry is one archived path.
type Entry struct {
	// Path is the slash-separated path inside the archive, relative to the root.
	Path    string    `json:"path"`
	Type    string    `json:"type"`
	Size    int64     `json:"size,omitzero"`
	Mode    uint32    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256,omitempty"`
	Link    string    `json:"link,omitempty"`
	// Dev, Inode, MTimeNS and CTimeNS identify the path as it was on disk
	// (format 2): a later backup that finds them, the size and the mode
	// unchanged reuses the archive member instead of reading the file.
	Dev     uint64 `json:"dev,omitzero"`
	Inode   uint64 `json:"ino,omitzero"`
	MTimeNS int64  `json:"mtime_ns,omitzero"`
	CTimeNS int64  `json:"ctime_ns,omitzero"`
}

// Database describes the PostgreSQL dump held by the backup.
type Database struct {
	// File is the standalone dump, relative to the backup directory
	// (database/vulcan_db_<id>.sql); the archive holds it at ArchivePath.
	File          string       `json:"file"`
	ArchivePath   string       `json:"archive_path"`
	SHA256        string       `json:"sha256"`
	Size          int64        `json:"size"`
	Format        string       `json:"format"`
	Name          string       `json:"name"`
	ServerVersion string       `json:"server_version"`
	Snapshot      string       `json:"snapshot,omitempty"`
	Tables        []TableCount `json:"tables"`
}

// TableCount is a table's row count, taken in the dump's snapshot.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// Warning records something that did not fail the backup but that an operator
// should know, such as a file that changed while it was read.
type Warning struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ErrInvalid marks a manifest that is not well formed.
var ErrInvalid = errors.New("invalid manifest")

var idPattern = regexp.MustCompile(`^[0-9]{8}_[0-9]{6}$`)

// ValidID reports whether id has the form YYYYMMDD_HHMMSS.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// IDFor formats t (in UTC) as a backup id.
func IDFor(t time.Time) string { return t.UTC().Format("20060102_150405") }

// ParseID returns the time a backup id stands for.
func ParseID(id string) (time.Time, error) {
	if !ValidID(id) {
		return time.Time{}, fmt.Errorf("backup id %q: want YYYYMMDD_HHMMSS", id)
	}
	return time.ParseInLocation("20060102_150405", id, time.UTC)
}

// ArchiveName is the archive file name of backup id.
func ArchiveName(id string) string { return "vulcan_backup_" + id + ".tar.gz" }

// ManifestName is the manifest file name of backup id.
func ManifestName(id string) string { return "vulcan_backup_" + id + ".json" }

// DumpName is the path of the standalone dump of backup id, relative to the
// backup directory; the archive holds the dump at the same path.
func DumpName(id string) string { return "database/vulcan_db_" + id + ".sql" }

var archiveNamePattern = regexp.MustCompile(`^vulcan_backup_([0-9]{8}_[0-9]{6})\.(tar\.gz|json)$`)

// IDFromName returns the backup id in an archive or manifest file name
// (any directory part is ignored).
func IDFromName(name string) (string, bool) {
	m := archiveNamePattern.FindStringSubmatch(path.Base(strings.ReplaceAll(name, "\\", "/")))
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Validate checks that m is well formed: known version and kind, matching id,
// hashes of the right shape, and entry paths that are clean, relative and unique.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return bad("format_version %d is not supported (this tool reads 1 to %d)", m.FormatVersion, FormatVersion)
	}
	if !ValidID(m.ID) {
		return bad("id %q is not YYYYMMDD_HHMMSS", m.ID)
	}
	undo := m.Kind == KindUndo
	switch {
	case !m.Kind.Valid() && !undo:
		return bad("kind %q is not scheduled, manual or emergency", m.Kind)
	case undo && m.Archive != FileRef{}:
		return bad("an undo has no archive")
	case undo:
	case m.Archive.File != ArchiveName(m.ID):
		return bad("archive file %q does not match id %s", m.Archive.File, m.ID)
	case !validHash(m.Archive.SHA256):
		return bad("archive sha256 %q is not 64 hex digits", m.Archive.SHA256)
	case m.Archive.Size <= 0:
		return bad("archive size %d", m.Archive.Size)
	}
	if len(m.Paths) == 0 {
		return bad("no paths")
	}
	for _, p := range m.Paths {
		if err := CheckPath(p); err != nil {
			return bad("path %q: %v", p, err)
		}
	}
	seen := make(map[string]bool, len(m.Files))
	var total int64
	for i, e := range m.Files {
		if err := CheckPath(e.Path); err != nil {
			return bad("files[%d] %q: %v", i, e.Path, err)
		}
		if seen[e.Path] {
			return bad("files[%d] %q is listed twice", i, e.Path)
		}
		seen[e.Path] = true
		if !underAny(e.Path, m.Paths) {
			return bad("files[%d] %q is outside the backed-up paths", i, e.Path)
		}
		switch e.Type {
		case TypeFile:
			if !validHash(e.SHA256) && !(undo && e.SHA256 == "") {
				return bad("files[%d] %q: sha256 %q is not 64 hex digits", i, e.Path, e.SHA256)
			}
			if e.Size < 0 {
				return bad("files[%d] %q: negative size", i, e.Path)
			}
			total += e.Size
		case TypeDir:
		case TypeSymlink:
			if e.Link == "" {
				return bad("files[%d] %q: symlink without target", i, e.Path)
			}
		default:
			return bad("files[%d] %q: type %q", i, e.Path, e.Type)
		}
	}
	if d := m.Database; d != nil {
		if undo {
			if d.File != "" || (d.ArchivePath != "" && d.ArchivePath != UndoDumpName) {
				return bad("undo database file %q / %q", d.File, d.ArchivePath)
			}
		} else if d.File != DumpName(m.ID) || d.ArchivePath != DumpName(m.ID) {
			return bad("database file %q / %q does not match id %s", d.File, d.ArchivePath, m.ID)
		}
		if !validHash(d.SHA256) && !(undo && d.ArchivePath == "" && d.SHA256 == "") {
			return bad("database sha256 %q is not 64 hex digits", d.SHA256)
		}
		if d.Size < 0 {
			return bad("database size %d", d.Size)
		}
		total += d.Size
	}
	if m.TotalBytes != total {
		return bad("total_bytes %d does not match the sum of entry sizes %d", m.TotalBytes, total)
	}
	if m.Members != nil {
		if m.FormatVersion < 2 || undo {
			return bad("a member table needs format 2 and an archive")
		}
		entries := len(m.Files)
		if m.Database != nil {
			entries++
		}
		if err := m.Members.validate(entries, m.Archive.Size, m.TotalBytes); err != nil {
			return bad("members: %v", err)
		}
	}
	return nil
}

// CheckPath reports why p is not a safe relative archive path, or nil.
func CheckPath(p string) error {
	switch {
	case p == "" || p == ".":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || (len(p) > 1 && p[1] == ':'):
		return errors.New("absolute path")
	case strings.ContainsRune(p, 0):
		return errors.New("NUL byte in path")
	case path.Clean(p) != p:
		return errors.New("path is not clean (., .. or repeated slashes)")
	case p == ".." || strings.HasPrefix(p, "../"):
		return errors.New("path escapes the root")
	}
	return nil
}

func underAny(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

func validHash(h string) bool { return validHex(h, 64) }

// validHex reports whether h is n lowercase hex digits.
func validHex(h string, n int) bool {
	if len(h) != n {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Decode reads and validates a manifest.
func Decode(r io.Reader) (*Manifest, error) {
	var m Manifest
	if err := json.UnmarshalRead(r, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Read reads and validates the manifest at path.
func Read(name string) (*Manifest, error) {
	f, err := os.Open(name) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("manifest %s: %w", name, err)
		}
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	return m, nil
}

// ReadBackup is Read for a manifest of the backup directory, which must
// describe a backup.
func ReadBackup(name string) (*Manifest, error) {
	m, err := Read(name)
	if err != nil {
		return nil, err
	}
	if err := m.CheckBackup(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	return m, nil
}

// CheckBackup refuses a manifest that describes no backup (an undo's).
func (m *Manifest) CheckBackup() error {
	if m.Kind == KindUndo {
		return fmt.Errorf("%w: kind %q describes no backup", ErrInvalid, m.Kind)
	}
	return nil
}

// Write stores m at name atomically (temporary file, fsync, rename), mode 0600.
func Write(name string, m *Manifest) error {
	data, err := encode(m)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(name, data, 0o600); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// encode is the manifest as written: indented JSON, one field per line, so
// that an operator can read and diff it.
//
// The codec is JSON v2 (github.com/go-json-experiment/json, the standard
// library's encoding/json/v2 from Go 1.27): it writes the same text as
// encoding/json did, byte for byte, and encodes and decodes a manifest of
// 20,000 files about twice as fast (BenchmarkEncode, BenchmarkDecode). When
// reading, it also refuses duplicate keys and invalid UTF-8.
func encode(m *Manifest) ([]byte, error) {
	data, err := json.Marshal(m, jsontext.WithIndent("  "), json.FormatNilSliceAsNull(true))
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// Table returns the row count recorded for table, and whether it is recorded.
func (d *Database) Table(table string) (int64, bool) {
	for _, t := range d.Tables {
		if t.Table == table {
			return t.Rows, true
		}
	}
	return 0, false
}

// FileCount is how many regular files the backup holds.
func (m *Manifest) FileCount() int {
	n := 0
	for _, e := range m.Files {
		if e.Type == TypeFile {
			n++
		}
	}
	return n
}
