package devserver

import (
	"fmt"
	"os"
	"strings"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// fatalLogger passes everything to the logger it wraps, except Fatal. The
// server calls Fatal where it cannot go on (a port it cannot bind, say) and
// expects the process to end there; with a logger that ignores it the server
// goes on and crashes later on a nil listener, with nothing said about why.
// Here Fatal prints the message, even when the server's log is off, and
// panics with a *FatalError, which Start turns into its error when the call
// came from the goroutine starting the server.
type fatalLogger struct{ log.Logger }

// FatalError is a fatal error the embedded server reported.
type FatalError struct {
	Msg  string
	Tags string
}

// Error says what the server reported, with its tags (service, address, cause).
func (e *FatalError) Error() string {
	if e.Tags == "" {
		return "dev server: " + e.Msg
	}
	return "dev server: " + e.Msg + " (" + e.Tags + ")"
}

func (l fatalLogger) Fatal(msg string, tags ...tag.Tag) {
	parts := make([]string, 0, len(tags))
	for _, t := range tags {
		parts = append(parts, fmt.Sprintf("%s=%v", t.Key(), t.Value()))
	}
	err := &FatalError{Msg: msg, Tags: strings.Join(parts, " ")}
	fmt.Fprintln(os.Stderr, err)
	panic(err)
}

// With keeps the wrapper when the server derives loggers with tags.
func (l fatalLogger) With(tags ...tag.Tag) log.Logger {
	return fatalLogger{log.With(l.Logger, tags...)}
}

// recoverFatal turns a panic with a *FatalError into *err; other panics go on.
func recoverFatal(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if fe, ok := r.(*FatalError); ok {
		*err = fe
		return
	}
	panic(r)
}
