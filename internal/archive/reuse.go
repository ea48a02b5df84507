package archive

import (
	"fmt"
	"io"
	"io/fs"
	"syscall"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Previous is an earlier verified backup whose members a new archive may
// copy instead of reading and compressing the files again.
type Previous struct {
	Manifest *manifest.Manifest
	// Archive reads the earlier archive; every member copied from it is
	// checked against its SHA-256 in the manifest.
	Archive io.ReaderAt
}

// reuse finds the members of an earlier archive that hold given paths.
type reuse struct {
	id      string
	man     *manifest.Manifest
	archive io.ReaderAt
	index   map[string]int // path -> entry index
	member  []int          // entry index -> the member its record starts in
}

// newReuse indexes prev, or returns nil if its members cannot be reused:
// none recorded (format 1) or cut by other rules.
func newReuse(prev *Previous) *reuse {
	if prev == nil || prev.Manifest == nil || prev.Archive == nil {
		return nil
	}
	m := prev.Manifest
	if m.Members == nil || m.Members.Layout != MemberLayout {
		return nil
	}
	r := &reuse{id: m.ID, man: m, archive: prev.Archive, index: make(map[string]int, len(m.Files)), member: make([]int, len(m.Files))}
	for i, e := range m.Files {
		r.index[e.Path] = i
		r.member[i] = -1
	}
	for i, mb := range m.Members.List {
		if mb.Piece <= 1 && mb.Count > 0 && mb.First < len(m.Files) {
			r.member[mb.First] = i
		}
	}
	return r
}

// identity fills the entry's identity on disk from info.
func identity(e *manifest.Entry, info fs.FileInfo) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		e.Dev, e.Inode = uint64(st.Dev), st.Ino // #nosec G115 -- dev_t is unsigned; Stat_t declares it wider on some systems
		e.MTimeNS, e.CTimeNS = st.Mtim.Nano(), st.Ctim.Nano()
	}
}

// unchanged reports whether the path described by info is the one e
// recorded: same type, size, mode, device, inode, mtime and ctime (which
// moves on any write, chmod, chown or rename of it, so a file whose mtime
// was set back is still seen as changed).
func unchanged(e *manifest.Entry, info fs.FileInfo) bool {
	if e.Inode == 0 || e.Type != entryType(info.Mode()) || e.Mode != uint32(tarMode(info.Mode())) { // #nosec G115 -- modes are 12 bits
		return false
	}
	if e.Type == manifest.TypeFile && e.Size != info.Size() {
		return false
	}
	var now manifest.Entry
	identity(&now, info)
	return now.Dev == e.Dev && now.Inode == e.Inode && now.MTimeNS == e.MTimeNS && now.CTimeNS == e.CTimeNS
}

func entryType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return manifest.TypeFile
	case m.IsDir():
		return manifest.TypeDir
	case m&fs.ModeSymlink != 0:
		return manifest.TypeSymlink
	}
	return ""
}

// group returns the earlier member that holds exactly the records of
// items, all unchanged, and the index of their first entry in it.
func (r *reuse) group(items []item) (manifest.Member, int, bool) {
	j, ok := r.index[items[0].name]
	if !ok || r.member[j] < 0 {
		return manifest.Member{}, 0, false
	}
	m := r.man.Members.List[r.member[j]]
	if m.Piece != 0 || m.First != j || m.Count != len(items) {
		return manifest.Member{}, 0, false
	}
	for k, it := range items {
		if e := &r.man.Files[j+k]; e.Path != it.name || !unchanged(e, it.info) {
			return manifest.Member{}, 0, false
		}
	}
	return m, j, true
}

// pieces returns the earlier members that hold the unchanged large file
// it, and its entry index.
func (r *reuse) pieces(it item) ([]manifest.Member, int, bool) {
	j, ok := r.index[it.name]
	if !ok || r.member[j] < 0 || !unchanged(&r.man.Files[j], it.info) {
		return nil, 0, false
	}
	list := r.man.Members.List
	first := r.member[j]
	if list[first].Piece != 1 {
		return nil, 0, false
	}
	end := first + 1
	for end < len(list) && list[end].Piece > 1 && list[end].First == j {
		end++
	}
	return list[first:end], j, true
}

// read reads member m of the earlier archive into buf, checks it against
// its SHA-256 and returns its sums. The CRC-32C is taken from the same
// bytes at the same time, so that the read-back compares the disk with the
// bytes that were checked.
func (r *reuse) read(buf []byte, m manifest.Member) (memberSums, error) {
	if _, err := r.archive.ReadAt(buf, m.Offset); err != nil {
		return memberSums{}, fmt.Errorf("read member at %d of backup %s: %w", m.Offset, r.id, err)
	}
	sums := sumMember(buf)
	if sums.sha256 != m.SHA256 {
		return memberSums{}, fmt.Errorf("%w: member at %d of backup %s: sha256 %s, its manifest says %s", ErrIntegrity, m.Offset, r.id, sums.sha256, m.SHA256)
	}
	return sums, nil
}
