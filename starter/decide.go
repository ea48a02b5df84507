package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

// isTerminal reports whether r is a terminal, where an operator can answer.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// askDecision puts the choice of an operation that waits for a decision to
// the operator on the terminal, with the time left. An empty answer (or the
// end of the input) leaves the operation waiting and returns "".
func (g *globalOptions) askDecision(what string, p workflows.Progress) string {
	left := ""
	if p.Deadline != nil {
		left = fmt.Sprintf(" until %s (%s left)", p.Deadline.UTC().Format("15:04:05 UTC"), time.Until(*p.Deadline).Round(time.Second))
	}
	in := bufio.NewReader(g.in)
	for {
		fmt.Fprintf(g.errOut, "step %d (%s) failed: %s\nthe %s waits for a decision%s. Fix the cause, then type %s (or press Enter to leave it waiting): ",
			p.Step, p.StepName, p.Message, what, left, strings.Join(p.Choices, " or "))
		line, err := in.ReadString('\n')
		answer := strings.ToLower(strings.TrimSpace(line))
		switch {
		case answer == "":
			if err == nil || line == "" {
				return ""
			}
		case slices.Contains(p.Choices, answer):
			return answer
		}
		if err != nil {
			return ""
		}
		fmt.Fprintf(g.errOut, "%q is not one of %s\n", answer, strings.Join(p.Choices, ", "))
	}
}
