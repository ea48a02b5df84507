package offsite

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
)

// Namer names member objects by a keyed hash of their SHA-256, so the names
// in the bucket cannot be matched against known content.
type Namer struct {
	// ID names the key (a hash of it); it reveals nothing of the key.
	ID  string
	key []byte
}

const keysDir = "keys/"

// ObjectKey is the object of the member whose compressed bytes have the
// given hex SHA-256.
func (n *Namer) ObjectKey(sha256hex string) string {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("vulcan-member\x00" + sha256hex)) // #nosec G104 -- hash.Hash.Write never returns an error
	h := hex.EncodeToString(m.Sum(nil))
	return "data/" + h[:2] + "/" + h
}

func newNamer(key []byte) *Namer {
	sum := sha256.Sum256(append([]byte("vulcan-name-key-id\x00"), key...))
	return &Namer{ID: hex.EncodeToString(sum[:8]), key: key}
}

type cachedKey struct {
	ID  string `json:"id"`
	Key []byte `json:"key"`
}

// LoadNamer returns the bucket's name key: from the worker's cache file, or
// decrypted from the bucket with ids (when given), or new. A new key is
// stored in the bucket, encrypted to recipients, before the cache, so the
// bucket always holds every key its objects were named with. A worker
// without the cache and without an identity starts a new key: its objects
// are named afresh and uploaded once again.
func LoadNamer(ctx context.Context, b *Bucket, recs []age.Recipient, ids []age.Identity, cache string) (*Namer, error) {
	if n, err := readCachedKey(cache); err == nil {
		if err := storeKey(ctx, b, n, recs); err != nil {
			return nil, err
		}
		return n, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var n *Namer
	if len(ids) > 0 {
		var err error
		if n, err = fetchKey(ctx, b, ids); err != nil {
			return nil, err
		}
	}
	if n == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("name key: %w", err)
		}
		n = newNamer(key)
		if err := storeKey(ctx, b, n, recs); err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(cachedKey{ID: n.ID, Key: n.key})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		return nil, fmt.Errorf("name key cache: %w", err)
	}
	if err := fsutil.WriteFileAtomic(cache, data, 0o600); err != nil {
		return nil, fmt.Errorf("name key cache: %w", err)
	}
	return n, nil
}

func readCachedKey(path string) (*Namer, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- the worker's own state file
	if err != nil {
		return nil, err
	}
	var c cachedKey
	if err := json.Unmarshal(data, &c); err != nil || len(c.Key) != 32 {
		return nil, fmt.Errorf("name key cache %s does not parse; remove it and the worker fetches or makes the key again", path)
	}
	n := newNamer(c.Key)
	if n.ID != c.ID {
		return nil, fmt.Errorf("name key cache %s: the key does not match its id %s", path, c.ID)
	}
	return n, nil
}

func storeKey(ctx context.Context, b *Bucket, n *Namer, recs []age.Recipient) error {
	name := keysDir + "names-" + n.ID + ".age"
	ok, err := b.Exists(ctx, name)
	if err != nil || ok {
		return err
	}
	sealed, err := seal(n.key, recs)
	if err != nil {
		return err
	}
	return b.Put(ctx, name, sealed, time.Time{})
}

// fetchKey decrypts the first key in the bucket that ids open; nil if there
// is none.
func fetchKey(ctx context.Context, b *Bucket, ids []age.Identity) (*Namer, error) {
	var names []string
	err := b.List(ctx, keysDir, func(key string, _ int64) error {
		if strings.HasPrefix(key, keysDir+"names-") && strings.HasSuffix(key, ".age") {
			names = append(names, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		sealed, err := b.Get(ctx, name, 4096)
		if err != nil {
			return nil, err
		}
		key, err := open(sealed, ids)
		if err != nil || len(key) != 32 {
			continue
		}
		if n := newNamer(key); keysDir+"names-"+n.ID+".age" == name {
			return n, nil
		}
	}
	return nil, nil
}
