package offsite

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
)

// LoadRecipients reads an age recipients file: X25519 (age1...) or SSH
// (ssh-ed25519, ssh-rsa) public keys, one a line; blank lines and lines
// starting with # are skipped. An error names the line, never its content
// (it may be a private key pasted by mistake).
func LoadRecipients(path string) ([]age.Recipient, error) {
	if path == "" {
		return nil, fmt.Errorf("VULCAN_OFFSITE_RECIPIENTS_FILE is not set: off-site copies are encrypted to its public keys")
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's configured recipients file
	if err != nil {
		return nil, fmt.Errorf("recipients file: %w", err)
	}
	var recs []age.Recipient
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r age.Recipient
		switch {
		case strings.HasPrefix(line, "age1"):
			rs, perr := age.ParseRecipients(strings.NewReader(line))
			if perr == nil {
				r = rs[0]
			}
			err = perr
		case strings.HasPrefix(line, "ssh-"):
			r, err = agessh.ParseRecipient(line)
		case strings.HasPrefix(line, "AGE-SECRET-KEY-"):
			return nil, fmt.Errorf("recipients file %s line %d: that is a private key; the worker needs the public one (age-keygen -y)", path, i+1)
		default:
			err = fmt.Errorf("not an age or SSH public key")
		}
		if err != nil {
			return nil, fmt.Errorf("recipients file %s line %d: %v", path, i+1, err)
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("recipients file %s holds no public key", path)
	}
	return recs, nil
}

// LoadIdentities reads an age identity file (AGE-SECRET-KEY-... lines) or an
// unencrypted SSH private key: what decrypts the objects.
func LoadIdentities(path string) ([]age.Identity, error) {
	if path == "" {
		return nil, fmt.Errorf("VULCAN_OFFSITE_IDENTITY_FILE is not set: reading the off-site copies needs the age identity")
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's configured identity file
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		id, err := agessh.ParseIdentity(b)
		if err != nil {
			return nil, fmt.Errorf("identity file %s: %v", path, err)
		}
		return []age.Identity{id}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %v", path, err)
	}
	return ids, nil
}
