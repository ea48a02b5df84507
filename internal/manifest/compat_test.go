package manifest

import (
	"bytes"
	stdjson "encoding/json"
	"reflect"
	"testing"
	"time"
)

// full is a manifest with every field set, including the optional ones.
func full() *Manifest {
	m := valid()
	m.CreatedAt = time.Date(2025, 12, 23, 2, 0, 0, 123456789, time.UTC)
	m.VerifiedAt = m.CreatedAt.Add(3 * time.Second)
	m.Files[1].ModTime = time.Date(2025, 12, 22, 23, 59, 58, 5, time.UTC)
	m.Database.Tables = []TableCount{{Table: "public.trades", Rows: 300000}, {Table: "public.empty", Rows: 0}}
	m.Database.Format, m.Database.Name, m.Database.ServerVersion, m.Database.Snapshot = "plain", "vulcan", "15.18", "00000003-0000001B-1"
	m.Warnings = []Warning{{Path: "storage/a", Message: "changed while read"}}
	m.ToolVersion, m.WorkflowID, m.RunID, m.DurationSec = "v1", "vulcan-backup-1", "run-1", 3.5
	return m
}

// Manifests written before the codec changed (encoding/json) read the same,
// and manifests written now read the same through encoding/json, so that an
// older release can still read them.
func TestManifestCodecMatchesEncodingJSON(t *testing.T) {
	for _, m := range []*Manifest{valid(), full()} {
		m.CreatedAt = m.CreatedAt.Round(0)
		old, err := stdjson.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(bytes.NewReader(old))
		if err != nil {
			t.Fatalf("decode a manifest written by encoding/json: %v", err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("decoded from encoding/json's output:\n got %+v\nwant %+v", got, m)
		}

		now, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Manifest
		if err := stdjson.Unmarshal(now, &back); err != nil {
			t.Fatalf("encoding/json reads what we write: %v", err)
		}
		if !reflect.DeepEqual(&back, m) {
			t.Errorf("encoding/json read back:\n got %+v\nwant %+v", &back, m)
		}
		if !bytes.Equal(bytes.TrimSuffix(now, []byte("\n")), old) {
			t.Errorf("the written form changed:\n got %s\nwant %s", now, old)
		}
	}
}
