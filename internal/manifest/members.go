package manifest

import (
	"errors"
	"fmt"
	"time"
)

// Members is the archive's member table: the gzip members in the order they
// are stored, and what each holds. Members are cut at file boundaries, so a
// file that has not changed gives the same member bytes from one backup to
// the next; a backup copies those from the previous archive instead of
// reading and compressing the file again.
type Members struct {
	// Layout names the rules the members were cut by; members are reused
	// only from an archive cut by the same rules.
	Layout string `json:"layout"`
	// Level is the deflate level new members were compressed at.
	Level int `json:"level"`
	// FullRead says every file was read, none reused.
	FullRead bool `json:"full_read"`
	// LastFullRead is when the newest full read this backup's copied
	// members go back to was taken (this backup's own time after a full
	// read): no file in it was last read before then.
	LastFullRead time.Time `json:"last_full_read,omitzero"`
	// ReusedFrom is the backup whose members were copied, if any were.
	ReusedFrom    string `json:"reused_from,omitempty"`
	ReusedMembers int    `json:"reused_members"`
	// ReusedBytes is the sum of the sizes of the files in copied members.
	ReusedBytes int64    `json:"reused_bytes"`
	List        []Member `json:"list"`
}

// Member is one gzip member of the archive.
type Member struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	// First and Count are the entries whose tar records the member holds,
	// as indexes into the files followed by the dump. A large file is cut
	// in pieces, numbered from 1 by Piece, each with Count 1; a member of
	// whole records has Piece 0.
	First int `json:"first"`
	Count int `json:"count"`
	Piece int `json:"piece,omitzero"`
	// CRC32C is the CRC-32C (Castagnoli) of a copied member's bytes as they
	// were written, in 8 hex digits: the read-back compares the copy on the
	// disk with it (see archive.VerifyWritten). A member compressed afresh
	// has none: the read-back inflates it.
	CRC32C string `json:"crc32c,omitempty"`
	// Copied says the member was copied from the previous backup (checked
	// there against its SHA-256), not compressed from the files. A large
	// file's pieces are all copied or none.
	Copied bool `json:"copied,omitzero"`
}

// MaxMemberLength bounds a member's compressed length, so that a reader of
// the table allocates nothing larger.
const MaxMemberLength = 32 << 20

// validate checks that the members tile the archive (size bytes) from its
// first byte to its last, that their records run through all entries in
// order, each exactly once, and that the counts add up.
func (ms *Members) validate(entries int, size, total int64) error {
	if len(ms.List) == 0 {
		return errors.New("empty list")
	}
	if ms.ReusedMembers < 0 || ms.ReusedMembers > len(ms.List) {
		return fmt.Errorf("reused_members %d of %d", ms.ReusedMembers, len(ms.List))
	}
	if ms.ReusedBytes < 0 || ms.ReusedBytes > total {
		return fmt.Errorf("reused_bytes %d of %d", ms.ReusedBytes, total)
	}
	if ms.ReusedFrom != "" && !ValidID(ms.ReusedFrom) {
		return fmt.Errorf("reused_from %q is not a backup id", ms.ReusedFrom)
	}
	if ms.FullRead && (ms.ReusedMembers != 0 || ms.ReusedBytes != 0) {
		return errors.New("a full read reuses nothing")
	}
	var end int64
	next := 0 // the first entry no member has started yet
	copied := 0
	for i, m := range ms.List {
		if m.Copied {
			copied++
		}
		switch {
		case m.Offset != end:
			return fmt.Errorf("[%d] offset %d, want %d", i, m.Offset, end)
		case m.Length <= 0 || m.Length > MaxMemberLength:
			return fmt.Errorf("[%d] length %d", i, m.Length)
		case !validHash(m.SHA256):
			return fmt.Errorf("[%d] sha256 %q is not 64 hex digits", i, m.SHA256)
		case m.Count < 0 || m.Piece < 0:
			return fmt.Errorf("[%d] count %d, piece %d", i, m.Count, m.Piece)
		case m.CRC32C != "" && !validHex(m.CRC32C, 8):
			return fmt.Errorf("[%d] crc32c %q is not 8 hex digits", i, m.CRC32C)
		}
		end += m.Length
		switch {
		case m.Piece == 0:
			if m.First != next || m.Count > entries-next {
				return fmt.Errorf("[%d] entries %d+%d, want from %d of %d", i, m.First, m.Count, next, entries)
			}
			next += m.Count
		case m.Count != 1:
			return fmt.Errorf("[%d] piece %d holds %d entries", i, m.Piece, m.Count)
		case m.Piece == 1:
			if m.First != next || next >= entries {
				return fmt.Errorf("[%d] first piece of entry %d, want %d of %d", i, m.First, next, entries)
			}
			next++
		default:
			if i == 0 || ms.List[i-1].Piece != m.Piece-1 || ms.List[i-1].First != m.First {
				return fmt.Errorf("[%d] piece %d of entry %d does not follow its piece %d", i, m.Piece, m.First, m.Piece-1)
			}
			if ms.List[i-1].Copied != m.Copied {
				return fmt.Errorf("[%d] piece %d of entry %d is copied and its piece %d is not, or the other way round", i, m.Piece, m.First, m.Piece-1)
			}
		}
	}
	// Tables written before members were marked mark none.
	if copied != 0 && copied != ms.ReusedMembers {
		return fmt.Errorf("%d members marked copied, reused_members %d", copied, ms.ReusedMembers)
	}
	if end != size {
		return fmt.Errorf("members end at %d, the archive at %d", end, size)
	}
	if next != entries {
		return fmt.Errorf("members hold %d entries of %d", next, entries)
	}
	return nil
}
