// Command starter is the operator's CLI for Vulcan Backup: it starts backups,
// restores and cleanups as Temporal workflows and follows them, manages the
// nightly schedule, and verifies, lists and describes backups directly from
// the backup directory (no Temporal server needed for those).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code; tests call it
// directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globalOptions{in: stdin, out: stdout, errOut: stderr}
	root := newRootCommand(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code, msg := describeError(err)
	fmt.Fprintln(stderr, "error:", msg)
	return code
}

const exitCodesHelp = `Exit status:
  0  success
  1  the operation failed (a failed restore has been rolled back; see the message)
  2  bad usage or input: unknown flag, wrong path, missing manifest, no confirmation
  3  integrity failure: the archive or manifest does not match (checksum, truncated, unsafe entry)
  4  another backup or restore is running (its workflow is named)
  5  the Temporal server cannot be reached
  6  needs an operator: a restore's rollback did not complete (the data may be mixed;
     the operation keeps the lock and waits: fix the cause, then starter retry <workflow>)`

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "starter",
		Short: "Back up and restore Project Vulcan's storage tree and database",
		Long: `starter drives Vulcan Backup. backup, restore and cleanup run as Temporal workflows
(the worker must be running); verify, list and info read the backup directory directly.

Every flag defaults from its environment variable; see README.md.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.load(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	g.addFlags(root)
	root.AddCommand(
		newBackupCommand(g), newRestoreCommand(g), newVerifyCommand(g), newListCommand(g),
		newInfoCommand(g), newCleanupCommand(g), newScheduleCommand(g), newStatusCommand(g),
		newRetryCommand(g), newCancelCommand(g), newDrillCommand(g),
	)
	return root
}

// Exit codes (documented in the help text and the README).
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitIntegrity   = 3
	ExitBusy        = 4
	ExitUnreachable = 5
	ExitOperator    = 6
)

// usageError marks bad usage.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// exitError carries an exit code and an operator-facing message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// describeError is the one place that maps errors to exit codes.
func describeError(err error) (int, string) {
	var ee *exitError
	var ue usageError
	switch {
	case errors.As(err, &ee):
		return ee.code, ee.msg
	case errors.As(err, &ue):
		return ExitUsage, ue.Error()
	case errors.Is(err, context.Canceled):
		return ExitFailed, "interrupted"
	}
	return ExitFailed, err.Error()
}
