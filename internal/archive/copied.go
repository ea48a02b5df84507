package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// copiedFilter passes an archive's raw stream through, less the members
// copied from the previous backup, so that a read-back inflates and parses
// only what was compressed afresh. Each copied member is read and compared
// instead with the CRC-32C its table records, taken from the bytes that
// were checked against the member's SHA-256 as they were copied: what is
// asked of the disk is to return what was written, which the CRC shows at
// a fraction of a second SHA-256 pass (a member without one is compared
// with its SHA-256). What it passes on is still a gzip stream of whole tar
// records (a copied member holds whole records or every piece of a file),
// lacking the copied entries.
type copiedFilter struct {
	r      io.Reader
	pos    int64
	copied []manifest.Member // still ahead, in order
	sha    hash.Hash
	crc    hash.Hash32
	buf    []byte
	err    error
}

// copiedEntries returns the entries of m held by copied members (indexes
// into m.Files) and those members, or an error if the table copies part of
// a file or anything but the tree.
func copiedEntries(m *manifest.Manifest) ([]int, []manifest.Member, error) {
	if m.Members == nil || m.Members.ReusedMembers == 0 {
		return nil, nil, nil
	}
	var entries []int
	var copied []manifest.Member
	for _, x := range m.Members.List {
		if !x.Copied {
			continue
		}
		if x.First+x.Count > len(m.Files) {
			return nil, nil, integrity("", "member at %d is marked copied but holds the dump or the tar trailer", x.Offset)
		}
		copied = append(copied, x)
		if x.Piece > 1 {
			continue // its entry was counted with piece 1
		}
		for e := x.First; e < x.First+x.Count; e++ {
			entries = append(entries, e)
		}
	}
	return entries, copied, nil
}

func newCopiedFilter(r io.Reader, copied []manifest.Member) *copiedFilter {
	return &copiedFilter{r: r, copied: copied, sha: sha256.New(), crc: crc32.New(castagnoli), buf: make([]byte, 256<<10)}
}

// Read returns the stream's bytes up to the next copied member, after
// checking any copied members it has reached.
func (f *copiedFilter) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	for len(f.copied) > 0 && f.pos == f.copied[0].Offset {
		if err := f.check(f.copied[0]); err != nil {
			f.err = err
			return 0, err
		}
		f.copied = f.copied[1:]
	}
	if len(f.copied) > 0 {
		p = p[:min(int64(len(p)), f.copied[0].Offset-f.pos)]
	}
	n, err := f.r.Read(p)
	f.pos += int64(n)
	if err == io.EOF && len(f.copied) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// check reads member x and compares it with its CRC-32C, or its SHA-256.
func (f *copiedFilter) check(x manifest.Member) error {
	var h hash.Hash = f.sha
	if x.CRC32C != "" {
		h = f.crc
	}
	h.Reset()
	n, err := io.CopyBuffer(h, io.LimitReader(f.r, x.Length), f.buf)
	f.pos += n
	if err != nil {
		return fmt.Errorf("copied member at %d: %w", x.Offset, err)
	}
	if n < x.Length {
		return fmt.Errorf("copied member at %d: %w", x.Offset, io.ErrUnexpectedEOF)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch {
	case x.CRC32C != "" && sum != x.CRC32C:
		return integrity("", "copied member at %d (%d bytes): crc32c %s on the disk, %s as written", x.Offset, x.Length, sum, x.CRC32C)
	case x.CRC32C == "" && sum != x.SHA256:
		return integrity("", "copied member at %d (%d bytes): sha256 %s, its table says %s", x.Offset, x.Length, sum, x.SHA256)
	}
	return nil
}
