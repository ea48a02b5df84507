// Package lowprio starts a command at the lowest CPU and I/O priority a
// process may give itself without privilege, so that a long job beside the
// application (a restore drill) takes the machine only when nothing else
// wants it.
//
// Niceness and I/O priority are attributes of a thread on Linux, and a
// forked process takes them from the thread that forked it. A Go program
// cannot lower its own priority for part of its work (its goroutines move
// between threads), but it can fork from a thread of its own whose
// priority it lowered first: the command, and every thread it makes, runs
// low, and the parent keeps its own.
//
// Niceness only orders threads of one scheduling group, and with
// autogroup (most distributions' kernels) every session is a group: a
// command that shared the worker's session would stay level with an
// application in a session of its own. So the command gets a session of
// its own, and its group the same niceness. Between cgroups (containers,
// systemd services) their CPU weights decide, not niceness.
package lowprio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Nice is the CPU niceness a command started here runs at: the lowest.
const Nice = 19

// I/O priority: the best-effort class at its lowest level, which an
// unprivileged process may set. The idle class would starve the command
// on a host whose application writes all the time.
const (
	IOClassBestEffort = 2
	IOLevel           = 7
	ioprioClassShift  = 13
	ioprioWhoProcess  = 1
)

// Start starts cmd at Nice and the lowest best-effort I/O level, in a
// session of its own whose scheduling group is at Nice too, with a death
// signal so that it does not outlive this process. wait waits for it
// as cmd.Wait does. The forking thread stays until cmd ends: it is the
// parent the death signal watches, and no other goroutine runs on it.
func Start(cmd *exec.Cmd) (wait func() error, err error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setsid = true
	started := make(chan error, 1)
	done := make(chan error, 1)
	go forkLow(cmd, started, done)
	if err := <-started; err != nil {
		return nil, err
	}
	var once sync.Once
	var werr error
	return func() error {
		once.Do(func() { werr = <-done })
		return werr
	}, nil
}

// forkLow starts cmd from a thread of its own at the lowered priority and
// waits for it there. The thread is never unlocked, so it ends with the
// goroutine and its priority with it; the main thread is never used, as
// Go parks it for good instead of ending it.
func forkLow(cmd *exec.Cmd, started, done chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// Held here, the main thread cannot take the goroutine below.
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			forkLow(cmd, started, done)
		}()
		<-ended
		runtime.UnlockOSThread()
		return
	}
	if err := Lower(0); err != nil {
		started <- err
		return
	}
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	// Best effort: without autogroup there is no such file, and the
	// command says what it runs at.
	_ = os.WriteFile(autogroupFile(cmd.Process.Pid), []byte(strconv.Itoa(Nice)), 0)
	started <- nil
	done <- cmd.Wait()
}

// Lower lowers the thread tid (0: the calling one) to Nice and the lowest
// best-effort I/O level.
func Lower(tid int) error {
	if tid == 0 {
		tid = unix.Gettid()
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice); err != nil {
		return fmt.Errorf("lower the CPU priority to nice %d: %w", Nice, err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), IOClassBestEffort<<ioprioClassShift|IOLevel); errno != 0 {
		return fmt.Errorf("lower the I/O priority to best-effort %d: %w", IOLevel, errno)
	}
	return nil
}

func autogroupFile(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/autogroup" }

// GroupNice is the niceness of process pid's autogroup, and false where the
// process is in none (a kernel without autogroup, or a task in a CPU cgroup
// of its own).
func GroupNice(pid int) (int, bool, error) {
	data, err := os.ReadFile(autogroupFile(pid))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, ok, err := parseAutogroup(data)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", autogroupFile(pid), err)
	}
	return n, ok, nil
}

// parseAutogroup reads the niceness out of a /proc/<pid>/autogroup file:
// "/autogroup-42 nice 19". A task in a CPU cgroup other than the root one
// is in no autogroup, and its file is empty.
func parseAutogroup(data []byte) (int, bool, error) {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, false, nil
	}
	if len(f) != 3 || f[1] != "nice" {
		return 0, false, fmt.Errorf("unexpected %q", data)
	}
	n, err := strconv.Atoi(f[2])
	return n, err == nil, err
}

// Of is the niceness and I/O priority (class and level) of thread tid.
func Of(tid int) (nice, ioClass, ioLevel int, err error) {
	// getpriority's system call answers 20-nice, so that it is never
	// negative; x/sys/unix passes the raw value on.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("CPU priority of thread %d: %w", tid, err)
	}
	r, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return 0, 0, 0, fmt.Errorf("I/O priority of thread %d: %w", tid, errno)
	}
	return 20 - p, int(r >> ioprioClassShift), int(r & (1<<ioprioClassShift - 1)), nil
}
