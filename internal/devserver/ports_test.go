package devserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.temporal.io/server/common/log"
)

// TestFreePortDoesNotRepeat: ports handed out in one process are all
// different, though each is closed again before the next is chosen (the
// server binds them all later). Random choice over the whole range repeated
// one within 400 ports almost surely.
func TestFreePortDoesNotRepeat(t *testing.T) {
	seen := map[int]bool{}
	for i := range 400 {
		p, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice (call %d)", p, i+1)
		}
		if p < portLow || p >= portHigh {
			t.Fatalf("port %d outside %d-%d", p, portLow, portHigh-1)
		}
		seen[p] = true
	}
}

// TestPortWindowsAreExclusive: another process takes its ports from another
// window while this one holds its own, and its window is free again once it
// has exited.
func TestPortWindowsAreExclusive(t *testing.T) {
	if os.Getenv("VULCAN_PORTS_CHILD") != "" {
		p, err := FreePort("127.0.0.1")
		if err != nil {
			fmt.Println("error", err)
			return
		}
		fmt.Println("window", ports.window, "port", p)
		return
	}
	if _, err := FreePort("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if ports.window < 0 {
		t.Fatal("this process holds no port window")
	}
	own := ports.window
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPortWindowsAreExclusive$")
		cmd.Env = append(os.Environ(), "VULCAN_PORTS_CHILD=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		var w, p int
		line := strings.SplitN(string(out), "\n", 2)[0]
		if _, err := fmt.Sscanf(line, "window %d port %d", &w, &p); err != nil {
			t.Fatalf("child said %q: %v", out, err)
		}
		if w == own {
			t.Fatalf("child took this process's window %d", w)
		}
		base := portLow + own*windowSize
		if p >= base && p < base+windowSize {
			t.Fatalf("child's port %d is in this process's window %d-%d", p, base, base+windowSize-1)
		}
		// The child has exited: its window can be locked again.
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "vulcan-devserver-ports", "window-"+strconv.Itoa(w)), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatalf("window %d still locked after its process exited: %v", w, err)
		}
		f.Close()
	}
}

// TestServerFatalIsAnError: when a port of the server is taken, Start-up
// returns the server's fatal message as an error instead of crashing the
// process later on a nil listener (seen in CI before fatalLogger).
func TestServerFatalIsAnError(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DBFile: filepath.Join(dir, "temporal.db"), Namespace: "default"}
	frontend, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	opts.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(frontend))
	cfg, err := prepare(&opts)
	if err != nil {
		t.Fatal(err)
	}
	taken := cfg.Services["worker"].RPC.GRPCPort
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(taken)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv, err := newServer(cfg, fatalLogger{log.NewNoopLogger()})
	if err == nil {
		_ = srv.Stop()
		t.Fatal("the server started with its worker service's port taken")
	}
	var fe *FatalError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T), want a *FatalError", err, err)
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), strconv.Itoa(taken)) {
		t.Fatalf("error %q does not say which port is in use", err)
	}
}
