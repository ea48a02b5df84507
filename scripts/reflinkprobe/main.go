// Command reflinkprobe measures what copying an archive's members from the
// previous archive costs on a file system, three ways: read and write
// (what a backup does, less the hashing), copy_file_range of ranges cut at
// 4 KiB boundaries (which XFS with reflink and btrfs clone, sharing
// extents), and copy_file_range of ranges cut anywhere (as members are
// now). It prints wall and CPU seconds, the fsync included. scripts/reflink.sh runs it on an XFS loop device and on the
// directory given.
//
//	go run ./scripts/reflinkprobe -dir DIR [-mb 512]
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	dir := flag.String("dir", "", "directory on the file system to measure")
	mb := flag.Int("mb", 512, "size of the previous archive, MiB")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	src := filepath.Join(*dir, "previous.bin")
	if err := write(src, int64(*mb)<<20); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.Remove(src) }()
	// Member-sized ranges: 1 MiB, or 1 MiB plus an odd tail, as members
	// of stored blocks are.
	aligned := ranges(int64(*mb)<<20, 1<<20, 0)
	unaligned := ranges(int64(*mb)<<20, 1<<20, 1237)
	for _, m := range []struct {
		name string
		copy func(in, out *os.File, rs [][2]int64) error
		rs   [][2]int64
	}{
		{"read+write", readWrite, unaligned},
		{"copy_file_range, 4 KiB-aligned members", copyRange, aligned},
		{"copy_file_range, members cut anywhere", copyRange, unaligned},
	} {
		dst := filepath.Join(*dir, "new.bin")
		wall, cpu, err := measure(src, dst, m.copy, m.rs)
		if err != nil {
			log.Fatalf("%s: %v", m.name, err)
		}
		fmt.Printf("%-42s wall %6.3f s  cpu %6.3f s\n", m.name, wall.Seconds(), cpu.Seconds())
		_ = os.Remove(dst)
	}
}

// ranges cuts size bytes into pieces of about piece bytes, each odd bytes
// longer, as (offset, length) pairs.
func ranges(size, piece, odd int64) [][2]int64 {
	var rs [][2]int64
	for off := int64(0); off < size; {
		n := min(piece+odd, size-off)
		rs = append(rs, [2]int64{off, n})
		off += n
	}
	return rs
}

func write(name string, size int64) error {
	f, err := os.Create(name) // #nosec G304 -- a file of the probe's own, in the directory it was given
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return err
	}
	return f.Sync()
}

func measure(src, dst string, copy func(in, out *os.File, rs [][2]int64) error, rs [][2]int64) (time.Duration, time.Duration, error) {
	in, err := os.Open(src) // #nosec G304 -- the probe's own file
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	out, err := os.Create(dst) // #nosec G304 -- the probe's own file
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	before, start := usage(), time.Now()
	if err := copy(in, out, rs); err != nil {
		return 0, 0, err
	}
	if err := out.Sync(); err != nil {
		return 0, 0, err
	}
	return time.Since(start), usage() - before, nil
}

func readWrite(in, out *os.File, rs [][2]int64) error {
	buf := make([]byte, 2<<20)
	for _, r := range rs {
		b := buf[:r[1]]
		if _, err := in.ReadAt(b, r[0]); err != nil {
			return err
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func copyRange(in, out *os.File, rs [][2]int64) error {
	var dstOff int64
	for _, r := range rs {
		off, left := r[0], r[1]
		for left > 0 {
			n, err := unix.CopyFileRange(int(in.Fd()), &off, int(out.Fd()), &dstOff, int(left), 0) // #nosec G115 -- file descriptors and a member's length fit an int
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			left -= int64(n)
		}
	}
	return nil
}

func usage() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // RUSAGE_SELF of this process cannot fail
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
