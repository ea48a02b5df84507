package pgdump

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
)

// A fresh database is loaded on several sessions at once. pg_dump writes a
// plain dump in dependency order: pre-data (types, tables, sequences,
// views), then the data of every table (one COPY each), then the rest
// (sequence values, constraints, indexes, foreign keys, triggers). Until
// the constraints come, one table's rows depend on nothing but its own
// definition, so, as pg_restore --jobs does, the COPY entries can be loaded
// side by side; and since a COPY in text format ends every row with a
// newline (one inside a value is written as \n), a large table's rows can be
// cut at any newline and shared between sessions, each with the COPY line.
// Pre-data and post-data run before and after, each on one session, in the
// dump's order. The plan holds byte ranges of the dump file, never its
// contents, so the memory does not grow with the dump.
//
// Only the fresh database of a restore is loaded this way: it is not in use,
// and a load that fails is dropped whole, so it needs no single transaction
// across the sessions. An in-place restore keeps psql's single transaction.

// loadSessions is how many sessions load table data at once: half the
// cores this process may use (GOMAXPROCS, which follows a container's CPU
// limit), at most four, the other half left to the emergency backup that
// runs beside the load. On two cores that is one, and the dump goes to one psql
// as it is: there, the reference dump loaded alone in 3.30-3.88 s on two
// sessions against 4.05-4.88 s by psql (five loads each, alternating), but
// beside the emergency backup, where a restore loads it, two sessions only
// took CPU from the backup, and restores were slower (12.5 and 14.6 s
// against 11.6 and 10.9 s, alternating).
var loadSessions = min(max(runtime.GOMAXPROCS(0)/2, 1), 4)

// splitMin is the smallest table data entry whose rows are shared between
// sessions; a smaller one goes whole to one session.
var splitMin int64 = 4 << 20

// errUnplanned marks a dump the parallel load does not take (a meta-command
// other than \restrict and \unrestrict, no table data, a COPY not closed):
// it is then loaded by one psql as it is.
var errUnplanned = errors.New("dump not split")

// piece is what one session reads: a literal, or a byte range of the dump.
type piece struct {
	lit    []byte
	off, n int64
}

// loadPlan is a dump cut into what each phase of a parallel load reads.
type loadPlan struct {
	header piece     // the settings every session needs
	pre    piece     // from the header's end to the first table data
	data   [][]piece // one list per session
	post   piece     // from the end of the table data to the end
}

// dataEntry is one table's data in the dump.
type dataEntry struct {
	start, end int64  // the whole entry, comment to the next entry
	copyLine   []byte // "COPY ... FROM stdin;\n"
	rows       int64  // where the rows begin
	rowsEnd    int64  // where the line "\." begins
}

// planLoad reads the dump at path and plans its parallel load, or returns
// errUnplanned.
func planLoad(path string) (*loadPlan, error) {
	if loadSessions < 2 {
		return nil, fmt.Errorf("%w: one session", errUnplanned)
	}
	f, err := os.Open(path) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return nil, fmt.Errorf("open dump: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open dump: %w", err)
	}
	size := st.Size()

	var (
		firstEntry = int64(-1)
		headerEnd  = int64(-1)
		dataStart  = int64(-1)
		dataEnd    = int64(-1)
		entries    []dataEntry
		cur        *dataEntry // the table data entry being read
		inCopy     bool
		off        int64
	)
	r := bufio.NewReaderSize(f, 256<<10)
	var long []byte     // the start of a line longer than the buffer
	rowTail := false    // line is the end of a row longer than the buffer
	dashes := int64(-1) // where the line before began, if it was "--"
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			off += int64(len(line))
			if inCopy {
				// A long row: nothing in it matters.
				rowTail = true
			} else {
				long = append(long, line...)
			}
			continue
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read dump: %w", err)
		}
		lineOff := off - int64(len(long))
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		off = lineOff + int64(len(line))
		if len(line) == 0 {
			break
		}
		tail := rowTail
		rowTail = false
		// An entry begins with the "--" line above its name.
		entryOff := lineOff
		if dashes >= 0 {
			entryOff = dashes
		}
		dashes = -1
		row := inCopy || tail // a row of table data (or its "\." end)
		switch {
		case tail:
		case inCopy:
			if string(line) == "\\.\n" {
				inCopy = false
				if cur != nil {
					cur.rowsEnd = lineOff
				}
			}
		case string(line) == "--\n":
			dashes = lineOff
		case bytes.HasPrefix(line, []byte("-- Name: ")) || bytes.HasPrefix(line, []byte("-- Data for Name: ")):
			lineOff = entryOff
			if firstEntry < 0 {
				firstEntry = lineOff
				if headerEnd < 0 {
					headerEnd = lineOff
				}
			}
			if cur != nil {
				if cur.rowsEnd == 0 {
					return nil, fmt.Errorf("%w: table data without a COPY", errUnplanned)
				}
				cur.end = lineOff
				entries = append(entries, *cur)
				cur = nil
			}
			isData := bytes.Contains(line, []byte("; Type: TABLE DATA;"))
			switch {
			case isData && dataEnd >= 0:
				return nil, fmt.Errorf("%w: table data after post-data", errUnplanned)
			case isData:
				if dataStart < 0 {
					dataStart = lineOff
				}
				cur = &dataEntry{start: lineOff}
			case dataStart >= 0 && dataEnd < 0:
				dataEnd = lineOff
			}
		case bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(line, []byte(" FROM stdin;\n")):
			inCopy = true
			if cur != nil {
				if cur.copyLine != nil {
					return nil, fmt.Errorf("%w: two COPY in one entry", errUnplanned)
				}
				cur.copyLine = slices.Clone(line)
				cur.rows = off
			}
		case firstEntry < 0 && headerEnd < 0 && !isSetting(line):
			// The header ends at its first statement (the DROPs of a
			// dump made with --clean): that runs once, with pre-data.
			headerEnd = lineOff
		}
		switch {
		case row:
		case line[0] == '\\':
			if !bytes.HasPrefix(line, []byte("\\restrict ")) && !bytes.HasPrefix(line, []byte("\\unrestrict ")) {
				return nil, fmt.Errorf("%w: meta-command %.40q", errUnplanned, line)
			}
		}
		if err == io.EOF {
			break
		}
	}
	if off != size {
		return nil, fmt.Errorf("read dump: %d bytes of %d", off, size)
	}
	if inCopy {
		return nil, fmt.Errorf("%w: a COPY is not closed", errUnplanned)
	}
	if cur != nil {
		if cur.rowsEnd == 0 {
			return nil, fmt.Errorf("%w: table data without a COPY", errUnplanned)
		}
		cur.end = size
		entries = append(entries, *cur)
	}
	if len(entries) < 2 && (len(entries) == 0 || entries[0].rowsEnd-entries[0].rows < splitMin) {
		return nil, fmt.Errorf("%w: nothing to load side by side", errUnplanned)
	}
	if dataEnd < 0 {
		dataEnd = size
	}
	p := &loadPlan{
		header: piece{off: 0, n: headerEnd},
		pre:    piece{off: headerEnd, n: dataStart - headerEnd},
		post:   piece{off: dataEnd, n: size - dataEnd},
	}
	parts, err := splitEntries(f, entries)
	if err != nil {
		return nil, err
	}
	p.data = share(parts, loadSessions)
	return p, nil
}

// isSetting reports whether a line of a dump's header only sets up the
// session (or is blank or a comment): every session runs those.
func isSetting(line []byte) bool {
	for _, p := range []string{"\n", "--", "SET ", "SELECT pg_catalog.set_config(", "\\restrict "} {
		if bytes.HasPrefix(line, []byte(p)) {
			return true
		}
	}
	return false
}

// part is what one session loads of one table: a list of pieces and its size.
type part struct {
	pieces []piece
	size   int64
}

// splitEntries cuts every entry of splitMin bytes or more into loadSessions
// parts at row boundaries; the others stay whole.
func splitEntries(f *os.File, entries []dataEntry) ([]part, error) {
	var parts []part
	for _, e := range entries {
		rows := e.rowsEnd - e.rows
		if rows < splitMin {
			parts = append(parts, part{pieces: []piece{{off: e.start, n: e.end - e.start}}, size: e.end - e.start})
			continue
		}
		cuts := []int64{e.rows}
		for i := int64(1); i < int64(loadSessions); i++ {
			at, err := nextLine(f, e.rows+rows*i/int64(loadSessions), e.rowsEnd)
			if err != nil {
				return nil, err
			}
			if at > cuts[len(cuts)-1] && at < e.rowsEnd {
				cuts = append(cuts, at)
			}
		}
		cuts = append(cuts, e.rowsEnd)
		for i := 0; i+1 < len(cuts); i++ {
			n := cuts[i+1] - cuts[i]
			parts = append(parts, part{
				pieces: []piece{{lit: e.copyLine}, {off: cuts[i], n: n}, {lit: []byte("\\.\n")}},
				size:   n,
			})
		}
	}
	return parts, nil
}

// nextLine returns the offset just after the first newline at or after at,
// or end if there is none before end.
func nextLine(f *os.File, at, end int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for at < end {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-at)], at)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return at + int64(i) + 1, nil
		}
		at += int64(n)
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("read dump: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return end, nil
}

// share deals the parts out to n sessions, largest first, each to the
// session with the least so far.
func share(parts []part, n int) [][]piece {
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(b.size, a.size) })
	out := make([][]piece, n)
	load := make([]int64, n)
	for _, p := range parts {
		i := slices.Index(load, slices.Min(load))
		out[i] = append(out[i], p.pieces...)
		load[i] += p.size
	}
	return out
}

// reader returns what a session reads: the pieces in order, the ranges read
// from f.
func (p piece) reader(f *os.File) io.Reader {
	if p.lit != nil {
		return bytes.NewReader(p.lit)
	}
	return io.NewSectionReader(f, p.off, p.n)
}

func readerOf(f *os.File, pieces ...piece) io.Reader {
	rs := make([]io.Reader, 0, len(pieces))
	for _, p := range pieces {
		if p.lit != nil || p.n > 0 {
			rs = append(rs, p.reader(f))
		}
	}
	return io.MultiReader(rs...)
}

// loadParallel loads the dump at path into db as plan says: pre-data on
// one session, the table data on loadSessions sessions at once, then the
// rest on one session; each session in a single transaction. The first
// failure stops the other sessions.
func (t *Target) loadParallel(ctx context.Context, db, path string, plan *loadPlan, progress func(int64)) error {
	f, err := os.Open(path) // #nosec G304 -- path from the configuration, the backup directory or a restore's own staging area, not from a request
	if err != nil {
		return fmt.Errorf("open dump: %w", err)
	}
	defer f.Close()
	prog := newProgressCounter(progress)
	if err := t.psql(ctx, db, &countingReader{r: readerOf(f, plan.header, plan.pre), progressCounter: prog}); err != nil {
		return err
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(plan.data))
	var wg sync.WaitGroup
	for i, pieces := range plan.data {
		if len(pieces) == 0 {
			continue
		}
		wg.Go(func() {
			if err := t.psql(dctx, db, &countingReader{r: readerOf(f, append([]piece{plan.header}, pieces...)...), progressCounter: prog}); err != nil {
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, err := range errs {
		// The first to fail, not one that was stopped because of it.
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return t.psql(ctx, db, &countingReader{r: readerOf(f, plan.header, plan.post), progressCounter: prog})
}
