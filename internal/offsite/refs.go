package offsite

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/project-vulcan/vulcan-backup/internal/manifest"
)

// Refs is what garbage collection needs to know of a remote backup, sealed
// with the name key rather than to the recipients: the worker, which holds
// no identity, must be able to read it to know which objects are in use.
type Refs struct {
	Backup    string        `json:"backup"`
	Kind      manifest.Kind `json:"kind"`
	CreatedAt time.Time     `json:"created_at"`
	Database  bool          `json:"database"`
	Keys      []string      `json:"keys"`
}

// RefsKey is backup id's refs object, written before its index.
func RefsKey(id string) string { return "backups/" + id + "/refs.bin" }

// refsEnvelope names the key the refs are sealed with.
type refsEnvelope struct {
	NameKey string `json:"name_key"`
	Sealed  []byte `json:"sealed"`
}

// errOtherKey is refs sealed with a name key this worker does not hold.
var errOtherKey = errors.New("sealed with another name key")

// refsKey derives the refs' key from the name key.
func (n *Namer) refsKey() []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("vulcan-refs")) // #nosec G104 -- hash.Hash.Write never returns an error
	return m.Sum(nil)
}

// sealRefs encrypts r with a key derived from the name key, bound to the
// backup's id.
func (n *Namer) sealRefs(r Refs) ([]byte, error) {
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(n.refsKey())
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return json.Marshal(refsEnvelope{NameKey: n.ID, Sealed: aead.Seal(nonce, nonce, plain, []byte(r.Backup))})
}

// openRefs decrypts backup id's refs.
func (n *Namer) openRefs(data []byte, id string) (*Refs, error) {
	var env refsEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("refs of %s: %w", id, err)
	}
	if env.NameKey != n.ID {
		return nil, fmt.Errorf("refs of %s: %w (%s)", id, errOtherKey, env.NameKey)
	}
	aead, err := chacha20poly1305.NewX(n.refsKey())
	if err != nil {
		return nil, err
	}
	if len(env.Sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("refs of %s: too short", id)
	}
	plain, err := aead.Open(nil, env.Sealed[:aead.NonceSize()], env.Sealed[aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("refs of %s: %w", id, err)
	}
	var r Refs
	if err := json.Unmarshal(plain, &r); err != nil || r.Backup != id {
		return nil, fmt.Errorf("refs of %s do not parse or name another backup", id)
	}
	return &r, nil
}
