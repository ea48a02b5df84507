package archive

import (
	"fmt"
	"hash/fnv"
)

// Members are cut at file boundaries, so that an unchanged file gives the
// same member bytes from one backup to the next:
//
//   - a file of pieceFile bytes or more starts a member of its own and is cut
//     in pieces of pieceBlock bytes of its tar record (header, data,
//     padding); the dump is always cut this way;
//   - the records of smaller files, directories and symlinks are grouped,
//     and a group ends after a record where a hash of its path says so, with
//     a chance proportional to the record's size (groupTarget bytes on
//     average), but never before groupMin bytes and always by groupMax. A
//     changed small file changes its own group; one added or removed moves
//     the boundaries of its group only, as the others depend on their own
//     paths.
//
// Each member loses the 32 KiB dictionary of the one before it: on the
// reference data, a few hundredths of a percent.
const (
	pieceFile   = 1 << 20
	pieceBlock  = 1 << 20
	groupTarget = 1 << 20
	groupMin    = 128 << 10
	groupMax    = 2 << 20
)

// MemberLayout names these rules in the manifest; members are reused only
// from an archive cut by the same ones.
var MemberLayout = fmt.Sprintf("files-v1 large=%d piece=%d target=%d min=%d max=%d", pieceFile, pieceBlock, groupTarget, groupMin, groupMax)

// recordSize is the size of a tar record of a file of size bytes with a
// plain header: what the group rules count.
func recordSize(size int64) int64 { return 512 + (size+511)/512*512 }

// endsGroup reports whether a group of acc bytes ends after the record of
// name, of rec bytes.
func endsGroup(name string, rec, acc int64) bool {
	switch {
	case acc >= groupMax:
		return true
	case acc < groupMin:
		return false
	case rec >= groupTarget:
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(name)) // #nosec G104 -- hash.Hash.Write never returns an error
	// A chance of rec/groupTarget: the hash below rec * 2^64/groupTarget.
	return h.Sum64() < uint64(rec)<<(64-20) // #nosec G115 -- 0 < rec < groupTarget = 2^20
}
