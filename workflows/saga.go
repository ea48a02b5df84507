package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// saga keeps how to undo what a restore has changed, newest last.
type saga struct {
	undo []compensation
}

// compensation undoes one step. A critical one that fails stops the
// rollback there: what comes after it (putting data back, starting the
// application) is not safe over a state it did not restore.
type compensation struct {
	what     string
	critical bool
	run      func(workflow.Context) error
}

// add registers how to undo a step, before the step runs: every undo is
// idempotent, so it is right whether the step ran, half ran or not at all.
func (s *saga) add(what string, critical bool, run func(workflow.Context) error) {
	s.undo = append(s.undo, compensation{what: what, critical: critical, run: run})
}

// unwind runs the compensations newest first, dropping each that is done. It
// stops at the first critical one that fails and returns its error; that one
// stays at the top, so a second unwind resumes there.
func (s *saga) unwind(ctx workflow.Context) error {
	for len(s.undo) > 0 {
		c := s.undo[len(s.undo)-1]
		if err := c.run(ctx); err != nil {
			if c.critical {
				return fmt.Errorf("%s: %s", c.what, rootMessage(err))
			}
			workflow.GetLogger(ctx).Warn("rollback: a clean-up step failed", "step", c.what, "error", err)
		}
		s.undo = s.undo[:len(s.undo)-1]
	}
	return nil
}

// left lists, in the order they would run, the undo steps not yet done.
func (s *saga) left() string {
	var names []string
	for i := len(s.undo) - 1; i >= 0; i-- {
		if s.undo[i].critical {
			names = append(names, s.undo[i].what)
		}
	}
	return strings.Join(names, ", then ")
}
