package offsite

import (
	"encoding/json"
	"strings"
	"testing"
)

// An index comes from the bucket: whatever it holds, decodeIndex either
// refuses it or returns objects that tile the archive exactly, each a data
// object of a bounded size.
func FuzzDecodeIndex(f *testing.F) {
	good := `{"format":1,"backup":"20261201_020000","archive":{"sha256":"` + strings.Repeat("a", 64) + `","size":5},` +
		`"objects":[{"key":"data/ab/` + strings.Repeat("b", 64) + `","offset":0,"length":5,"sha256":"` + strings.Repeat("c", 64) + `"}]}`
	f.Add([]byte(good))
	f.Add([]byte(strings.Replace(good, `"length":5`, `"length":4`, 1)))
	f.Add([]byte(`{"format":1,"backup":"20261201_020000","objects":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := decodeIndex(data, "20261201_020000")
		if err != nil {
			return
		}
		var at int64
		for _, o := range ix.Objects {
			if o.Offset != at || o.Length <= 0 || o.Length > maxObject || !objectKeyPattern.MatchString(o.Key) {
				t.Fatalf("accepted object %+v at %d", o, at)
			}
			at += o.Length
		}
		if at != ix.Archive.Size || ix.Backup != "20261201_020000" {
			out, _ := json.Marshal(ix)
			t.Fatalf("accepted an index that does not tile its archive: %s", out)
		}
	})
}

// Refs come from the bucket too: whatever they hold, opening them never
// panics, and what opens names the backup it was opened for.
func FuzzOpenRefs(f *testing.F) {
	n := newNamer([]byte(strings.Repeat("k", 32)))
	sealed, err := n.sealRefs(Refs{Backup: "20261201_020000", Keys: []string{"data/ab/" + strings.Repeat("b", 64)}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte(`{"name_key":"` + n.ID + `","sealed":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := n.openRefs(data, "20261201_020000")
		if err == nil && string(data) != string(sealed) && r.Backup != "20261201_020000" {
			t.Fatalf("opened refs of another backup: %+v", r)
		}
	})
}
