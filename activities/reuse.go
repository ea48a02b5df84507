package activities

import (
	"context"
	"fmt"
	"io"

	"github.com/project-vulcan/vulcan-backup/internal/archive"
	"github.com/project-vulcan/vulcan-backup/internal/fsutil"
	"github.com/project-vulcan/vulcan-backup/workflows"
)

// previousBackup returns the verified backup whose members the backup of
// plan may copy, with its archive open, or nil and why every file is read:
// asked to (--full), no earlier backup of the same layout and level, or the
// last full read older than FullEvery. An emergency backup, which a restore
// waits for, copies from a backup of any level.
// The archive is read around the page cache: it is rarely still cached,
// and copying it through the cache costs more system time than reading it.
func (a *Activities) previousBackup(plan workflows.BackupPlan, level int) (*archive.Previous, io.Closer, string) {
	if plan.Full {
		return nil, nil, "asked for a full read"
	}
	infos, _, err := a.Backups.List()
	if err != nil {
		return nil, nil, fmt.Sprintf("no earlier backup to copy from: %v", err)
	}
	for _, info := range infos {
		if !info.Verified || info.ID >= plan.ID {
			continue
		}
		m, err := a.manifests.Read(info.ManifestPath)
		if err != nil || m.Members == nil || m.Members.Layout != archive.MemberLayout {
			continue
		}
		if m.Members.Level != level && plan.Kind != workflows.KindEmergency {
			continue
		}
		if age := plan.StartedAt.Sub(m.Members.LastFullRead); age >= a.FullEvery {
			return nil, nil, fmt.Sprintf("the last full read was %s ago, at %s (VULCAN_FULL_EVERY=%s)",
				age.Round(1e9), m.Members.LastFullRead.Format("2006-01-02 15:04 MST"), a.FullEvery)
		}
		f, err := fsutil.OpenDirectAt(a.Backups.ArchivePath(m.ID))
		if err != nil {
			return nil, nil, fmt.Sprintf("backup %s: %v", m.ID, err)
		}
		if st, err := f.Stat(); err != nil || st.Size() != m.Archive.Size {
			f.Close() // #nosec G104 -- a read-only file we are giving up on; nothing was written
			return nil, nil, fmt.Sprintf("backup %s: its archive is not the size its manifest says", m.ID)
		}
		return &archive.Previous{Manifest: m, Archive: f}, f, ""
	}
	return nil, nil, "no earlier backup of this layout to copy from"
}

// logReuse says what the archive step copied, or why it read everything.
func (a *Activities) logReuse(ctx context.Context, res *archive.Result, why string) {
	ms := res.Members
	if ms.FullRead {
		a.log(ctx).Info("every file read", "reason", why)
		return
	}
	a.log(ctx).Info("unchanged files copied from the previous backup", "from", ms.ReusedFrom,
		"members", ms.ReusedMembers, "of", len(ms.List), "bytes", ms.ReusedBytes, "of", res.TotalBytes)
}

// archiveLevel is the deflate level the archive step writes at.
func archiveLevel(kind string) int {
	if kind == workflows.KindEmergency {
		// A restore waits for this one: speed before size.
		return archive.Stored
	}
	return archive.DefaultLevel
}
