package manifest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// withMembers is valid() in format 2 with a member table: the directory and
// the file in one member, the symlink alone, the dump in two pieces, the tar
// trailer last.
func withMembers() *Manifest {
	m := valid()
	m.FormatVersion = 2
	h := strings.Repeat("b", 64)
	m.Members = &Members{Layout: "files-v1", Level: 4, List: []Member{
		{Offset: 0, Length: 30, SHA256: h, First: 0, Count: 2},
		{Offset: 30, Length: 20, SHA256: h, First: 2, Count: 1},
		{Offset: 50, Length: 20, SHA256: h, First: 3, Count: 1, Piece: 1},
		{Offset: 70, Length: 20, SHA256: h, First: 3, Count: 1, Piece: 2},
		{Offset: 90, Length: 10, SHA256: h, First: 4, Count: 0},
	}}
	return m
}

func TestMembers(t *testing.T) {
	if err := withMembers().Validate(); err != nil {
		t.Fatalf("valid member table: %v", err)
	}
	copied := withMembers()
	copied.Members.List[2].Copied, copied.Members.List[3].Copied, copied.Members.ReusedMembers = true, true, 2
	if err := copied.Validate(); err != nil {
		t.Fatalf("valid member table with a copied file: %v", err)
	}
	// Tables written before members were marked copied count them only.
	unmarked := withMembers()
	unmarked.Members.ReusedMembers, unmarked.Members.ReusedFrom = 2, "20250101_000000"
	if err := unmarked.Validate(); err != nil {
		t.Fatalf("a table that counts copied members without marking them: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
		want string
	}{
		{"format 1", func(m *Manifest) { m.FormatVersion = 1 }, "format 2"},
		{"empty", func(m *Manifest) { m.Members.List = nil }, "empty"},
		{"gap", func(m *Manifest) { m.Members.List[1].Offset = 31 }, "offset 31"},
		{"short of the archive", func(m *Manifest) { m.Members.List[4].Length = 9 }, "archive at 100"},
		{"zero length", func(m *Manifest) { m.Members.List[4].Length = 0 }, "length 0"},
		{"huge length", func(m *Manifest) { m.Members.List[4].Length = MaxMemberLength + 1 }, "length"},
		{"hash", func(m *Manifest) { m.Members.List[0].SHA256 = "x" }, "64 hex"},
		{"crc", func(m *Manifest) { m.Members.List[1].CRC32C = "0000000G" }, "8 hex"},
		{"entry skipped", func(m *Manifest) { m.Members.List[1].First = 3 }, "entries 3+1"},
		{"entry twice", func(m *Manifest) { m.Members.List[0].Count = 3 }, "entries 2+1, want from 3"},
		{"entries missing", func(m *Manifest) { m.Members.List[4].First = 3 }, "entries 3+0"},
		{"too many entries", func(m *Manifest) { m.Members.List[4].Count = 1 }, "entries 4+1"},
		{"piece out of order", func(m *Manifest) { m.Members.List[3].Piece = 3 }, "does not follow"},
		{"piece of another entry", func(m *Manifest) { m.Members.List[3].First = 2 }, "does not follow"},
		{"piece with two entries", func(m *Manifest) { m.Members.List[2].Count = 2 }, "holds 2 entries"},
		{"first member a later piece", func(m *Manifest) {
			m.Members.List[0] = Member{Length: 30, SHA256: m.Archive.SHA256, Count: 1, Piece: 2}
		}, "does not follow"},
		{"negative", func(m *Manifest) { m.Members.List[0].Count = -1 }, "count -1"},
		{"reused too much", func(m *Manifest) { m.Members.ReusedBytes = m.TotalBytes + 1 }, "reused_bytes"},
		{"reused members", func(m *Manifest) { m.Members.ReusedMembers = 6 }, "reused_members"},
		{"full read that reused", func(m *Manifest) { m.Members.FullRead, m.Members.ReusedMembers = true, 1 }, "full read"},
		{"reused from", func(m *Manifest) { m.Members.ReusedFrom = "../x" }, "reused_from"},
		{"copied but not counted", func(m *Manifest) { m.Members.List[0].Copied = true }, "1 members marked copied, reused_members 0"},
		{"pieces partly copied", func(m *Manifest) { m.Members.List[2].Copied, m.Members.ReusedMembers = true, 1 }, "piece 2 of entry 3 is copied and its piece 1 is not"},
		{"undo", func(m *Manifest) { m.Kind = KindUndo }, "undo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := withMembers()
			tc.edit(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Format 1 manifests, without a member table or identities, still read.
func TestFormat1StillReads(t *testing.T) {
	data, _ := json.Marshal(valid())
	m, err := Decode(bytes.NewReader(data))
	if err != nil || m.Members != nil || m.FormatVersion != 1 {
		t.Fatalf("format 1: %v, %+v", err, m)
	}
}

// FuzzMembers: a member table either validates, and then tiles the archive
// and names every entry in order, or is refused; it never panics.
func FuzzMembers(f *testing.F) {
	good, _ := json.Marshal(withMembers().Members)
	f.Add(good)
	f.Add([]byte(`{"list": [{"offset": 0, "length": 100, "sha256": "` + strings.Repeat("c", 64) + `", "first": 0, "count": 4, "piece": 2}]}`))
	f.Add([]byte(`{"list": [{"offset": 0, "length": -5}]}`))
	f.Add([]byte(`{"list": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := withMembers()
		m.Members = nil
		if err := json.Unmarshal(data, &m.Members); err != nil || m.Members == nil {
			return
		}
		if err := m.Validate(); err != nil {
			return
		}
		var end int64
		seen := map[int]bool{}
		for _, x := range m.Members.List {
			if x.Offset != end {
				t.Fatalf("accepted a gap at %d", end)
			}
			end += x.Length
			for i := x.First; i < x.First+x.Count; i++ {
				if x.Piece <= 1 && seen[i] {
					t.Fatalf("entry %d started twice", i)
				}
				seen[i] = true
			}
		}
		if end != m.Archive.Size || len(seen) != len(m.Files)+1 {
			t.Fatalf("accepted a table that ends at %d and names %d entries", end, len(seen))
		}
		again, _ := encode(m)
		if _, err := Decode(bytes.NewReader(again)); err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
	})
}
