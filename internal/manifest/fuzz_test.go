package manifest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecode: any input either decodes to a manifest that validates (and
// re-encodes to one that decodes again) or is refused with ErrInvalid; it
// never panics.
func FuzzDecode(f *testing.F) {
	good, _ := json.Marshal(valid())
	f.Add(good)
	f.Add([]byte(`{"format_version": 1, "id": "20251223_020000"`))
	f.Add([]byte(`{"format_version": 1, "id": "20251223_020000", "kind": "manual", "paths": ["storage"], "files": [{"path": "../etc/passwd", "type": "file"}]}`))
	f.Add([]byte(`{"format_version": 99}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode accepted a manifest that does not validate: %v", err)
		}
		for _, e := range m.Files {
			if CheckPath(e.Path) != nil {
				t.Fatalf("unsafe path %q accepted", e.Path)
			}
		}
		again, _ := json.Marshal(m)
		if _, err := Decode(bytes.NewReader(again)); err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
	})
}
