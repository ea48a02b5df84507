package devserver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// The embedded server needs nine ports (four services with a gRPC and a
// membership port each, and metrics) besides the frontend's. It binds them a
// while after they are chosen, so a port that is free when chosen can be taken
// by then: by this process choosing it twice, or by another process choosing
// it at the same time (parallel tests, several workers on one host). The
// server cannot report that: it logs a fatal error and goes on with a nil
// listener.
//
// Ports are therefore taken from a window of the range 10000-31999 (below
// Linux's ephemeral ports, 32768 and up, which outgoing connections take)
// that this process holds alone: a lock file per window under the temporary
// directory, flocked for the life of the process, so the kernel releases it
// when the process dies. Within its window a process hands the ports out in
// turn, never the same port twice until it has gone round, and skips those
// bound now. Without a window (all held, or no lock directory) it falls back
// to random ports in the whole range.
const (
	portLow     = 10000
	portHigh    = 32000
	windowSize  = 550
	windowCount = (portHigh - portLow) / windowSize
)

var ports struct {
	sync.Mutex
	opened bool
	window int      // -1: none, random over the whole range
	next   int      // offset of the next port in the window
	lock   *os.File // held, so that the collector does not close it and its lock
}

// FreePort returns a port on host that is free now and that this process has
// not handed out recently; see the comment above for how processes keep out
// of each other's way.
func FreePort(host string) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if !ports.opened {
		ports.opened = true
		ports.window, ports.lock = claimWindow()
		ports.next = rand.IntN(windowSize) // #nosec G404 -- spreads port choices over the window; not a secret
	}
	var last error
	if ports.window >= 0 {
		base := portLow + ports.window*windowSize
		for range windowSize {
			port := base + ports.next
			ports.next = (ports.next + 1) % windowSize
			if last = checkFree(host, port); last == nil {
				return port, nil
			}
		}
		return 0, fmt.Errorf("no free port on %s in %d-%d: %w", host, base, base+windowSize-1, last)
	}
	for range 100 {
		port := portLow + rand.IntN(portHigh-portLow) // #nosec G404 -- spreads port choices over the window; not a secret
		if last = checkFree(host, port); last == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port on %s: %w", host, last)
}

// claimWindow locks the first free window, starting at a random one, and
// returns its number and the open lock file (kept open: closing it would
// release the lock). It returns -1 if none can be had.
func claimWindow() (int, *os.File) {
	dir := filepath.Join(os.TempDir(), "vulcan-devserver-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil { // #nosec G301 -- the port-window lock files are shared by every worker --dev on the host, whoever runs it
		return -1, nil
	}
	_ = os.Chmod(dir, 0o777|os.ModeSticky) // #nosec G302 -- shared by every user, like /tmp
	first := rand.IntN(windowCount)        // #nosec G404 -- spreads port choices over the window; not a secret
	for i := range windowCount {
		w := (first + i) % windowCount
		f, err := os.OpenFile(filepath.Join(dir, "window-"+strconv.Itoa(w)), os.O_RDWR|os.O_CREATE, 0o666) // #nosec G302 G304 -- a lock file of the shared port-window directory, used by every worker --dev on the host
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // #nosec G104 -- closed on an error path or after use; the error that matters is returned
			continue
		}
		return w, f
	}
	return -1, nil
}

func checkFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d on %s is not free: %w", port, host, err)
	}
	return l.Close()
}
