package lowprio

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threads lists the thread ids of process pid.
func threads(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// A command started here runs, every thread of it, at nice 19 and the
// lowest best-effort I/O level, and this process keeps its priority.
func TestStartLowersTheCommandOnly(t *testing.T) {
	before, _, _, err := Of(syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if before == Nice {
		t.Skip("this test runs at nice 19 already: nothing to tell apart")
	}
	// The shell's child must inherit the priority too.
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	wait, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = wait()
	}()
	for _, tid := range threads(t, cmd.Process.Pid) {
		nice, class, level, err := Of(tid)
		if err != nil {
			t.Fatal(err)
		}
		if nice != Nice || class != IOClassBestEffort || level != IOLevel {
			t.Errorf("thread %d of the command: nice %d, I/O class %d level %d; want %d, %d, %d", tid, nice, class, level, Nice, IOClassBestEffort, IOLevel)
		}
	}
	if sid, _ := unix.Getsid(cmd.Process.Pid); sid != cmd.Process.Pid {
		t.Errorf("the command is in session %d, want one of its own", sid)
	}
	if n, ok, err := GroupNice(cmd.Process.Pid); err != nil || (ok && n != Nice) {
		t.Errorf("the command's scheduling group is at nice %d (%v)", n, err)
	}
	if n, ok, err := GroupNice(os.Getpid()); err != nil || (ok && n == Nice) {
		t.Errorf("this process's scheduling group went to nice %d (%v)", n, err)
	}
	// Only the forking thread, parked in wait, is lowered here.
	lowered := 0
	for _, tid := range threads(t, os.Getpid()) {
		if nice, _, _, err := Of(tid); err == nil && nice == Nice {
			lowered++
		}
	}
	if lowered != 1 {
		t.Errorf("%d threads of this process at nice %d while the command runs, want the one that forked", lowered, Nice)
	}
	_ = cmd.Process.Kill()
	_ = wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lowered = 0
		for _, tid := range threads(t, os.Getpid()) {
			if nice, _, _, err := Of(tid); err == nil && nice == Nice {
				lowered++
			}
		}
		if lowered == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, tid := range threads(t, os.Getpid()) {
				n, c, l, _ := Of(tid)
				st, _ := os.ReadFile(filepath.Join("/proc/self/task", strconv.Itoa(tid), "stat"))
				t.Logf("thread %d: nice %d io %d/%d %s", tid, n, c, l, st)
			}
			t.Fatalf("%d threads of this process stay at nice %d after the command ended", lowered, Nice)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The command dies with the process that started it, even by SIGKILL.
func TestCommandDiesWithItsParent(t *testing.T) {
	if os.Getenv("LOWPRIO_HELPER") == "1" {
		cmd := exec.Command("sleep", "60")
		if _, err := Start(cmd); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		time.Sleep(time.Minute)
		return
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestCommandDiesWithItsParent$")
	helper.Env = append(os.Environ(), "LOWPRIO_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = helper.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the command is not running: %v", err)
	}
	_ = helper.Process.Kill()
	_ = helper.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		// Gone, or a zombie waiting for init to reap it.
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command (pid %d) outlived its parent", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A task in a CPU cgroup of its own (a container, a systemd service) is in
// no autogroup, and the kernel answers its autogroup file with nothing:
// that is no autogroup, not a fault.
func TestParseAutogroup(t *testing.T) {
	for _, c := range []struct {
		data    string
		nice    int
		grouped bool
		fails   bool
	}{
		{data: "/autogroup-42 nice 19\n", nice: 19, grouped: true},
		{data: "/autogroup-6 nice 0\n", nice: 0, grouped: true},
		{data: "", grouped: false},
		{data: "/autogroup-6 nice\n", fails: true},
		{data: "/autogroup-6 nice x\n", fails: true},
	} {
		n, grouped, err := parseAutogroup([]byte(c.data))
		if (err != nil) != c.fails {
			t.Errorf("%q: error %v, want failure %v", c.data, err, c.fails)
			continue
		}
		if !c.fails && (n != c.nice || grouped != c.grouped) {
			t.Errorf("%q: nice %d, grouped %v; want %d, %v", c.data, n, grouped, c.nice, c.grouped)
		}
	}
}
