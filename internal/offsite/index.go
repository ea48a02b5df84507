package offsite

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// IndexFormat is the version of the index layout.
const IndexFormat = 1

// Index lists a backup's objects in archive order: decrypted and
// concatenated they are its archive.
type Index struct {
	Format    int       `json:"format"`
	Backup    string    `json:"backup"`
	CreatedAt time.Time `json:"created_at"`
	// Archive is the archive's SHA-256 and size, as in its manifest.
	Archive struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"archive"`
	// NameKey is the id of the key the objects were named with.
	NameKey string   `json:"name_key"`
	Objects []Object `json:"objects"`
}

// Object is one member: its object key, where it goes in the archive, and
// the SHA-256 of its decrypted bytes.
type Object struct {
	Key    string `json:"key"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

var (
	objectKeyPattern = regexp.MustCompile(`^data/[0-9a-f]{2}/[0-9a-f]{64}$`)
	hexSHA256        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// decodeIndex parses and checks an index: the objects must tile the archive
// from its first byte to its last, and every key must be a data object.
func decodeIndex(data []byte, backup string) (*Index, error) {
	var ix Index
	if err := json.Unmarshal(data, &ix); err != nil {
		return nil, fmt.Errorf("index of backup %s: %w", backup, err)
	}
	if ix.Format != IndexFormat {
		return nil, fmt.Errorf("index of backup %s: format %d, this version reads %d", backup, ix.Format, IndexFormat)
	}
	if ix.Backup != backup {
		return nil, fmt.Errorf("index of backup %s names backup %q", backup, ix.Backup)
	}
	if !hexSHA256.MatchString(ix.Archive.SHA256) {
		return nil, fmt.Errorf("index of backup %s: archive sha256 %q", backup, ix.Archive.SHA256)
	}
	var at int64
	for i, o := range ix.Objects {
		switch {
		case !objectKeyPattern.MatchString(o.Key):
			return nil, fmt.Errorf("index of backup %s: object %d: key %q is no data object", backup, i, o.Key)
		case !hexSHA256.MatchString(o.SHA256):
			return nil, fmt.Errorf("index of backup %s: object %d: sha256 %q", backup, i, o.SHA256)
		case o.Offset != at || o.Length <= 0 || o.Length > maxObject:
			return nil, fmt.Errorf("index of backup %s: object %d at %d (%d bytes) does not follow the one before (ends at %d)", backup, i, o.Offset, o.Length, at)
		}
		at += o.Length
	}
	if at != ix.Archive.Size {
		return nil, fmt.Errorf("index of backup %s: objects cover %d bytes of an archive of %d", backup, at, ix.Archive.Size)
	}
	return &ix, nil
}

// maxObject bounds a member object's plain size: the largest member the
// archive writes is a little over 16 MiB; older archives are cut in chunks.
const maxObject = 32 << 20
