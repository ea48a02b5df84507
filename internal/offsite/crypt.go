package offsite

import (
	"bytes"
	"fmt"
	"io"

	"filippo.io/age"
)

// seal encrypts plain to the recipients: the age binary format, which
// `age -d -i identity` decrypts.
func seal(plain []byte, recs []age.Recipient) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(plain) + len(plain)/(64<<10)*16 + 512)
	w, err := age.Encrypt(&out, recs...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return out.Bytes(), nil
}

// open decrypts what seal wrote; a damaged or foreign object fails here
// (age authenticates every 64 KiB chunk).
func open(sealed []byte, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), ids...)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return plain, nil
}
