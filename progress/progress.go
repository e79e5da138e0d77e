// Package progress reports the advance of long work: a bar on a terminal,
// plain lines (one per 10%) when output goes to a file or a CI log.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar counts units of work towards a known total. It is safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	desc     string
	total    int64
	done     int64
	bytes    bool
	w        io.Writer
	bar      *progressbar.ProgressBar // nil when not on a terminal
	nextLine int64
	start    time.Time
	finished bool
}

// New starts a bar for total items, writing to stderr.
func New(total int64, desc string) *Bar { return newBar(os.Stderr, total, desc, false) }

// NewBytes starts a bar that counts bytes.
func NewBytes(total int64, desc string) *Bar { return newBar(os.Stderr, total, desc, true) }

// NewTo starts a bar writing plain lines to w (never a terminal bar); for tests and logs.
func NewTo(w io.Writer, total int64, desc string) *Bar {
	b := newBar(w, total, desc, false)
	b.bar = nil
	return b
}

func newBar(w io.Writer, total int64, desc string, bytes bool) *Bar {
	b := &Bar{desc: desc, total: total, bytes: bytes, w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("CI") == "" {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetWidth(30),
		}
		if bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		}
		b.bar = progressbar.NewOptions64(total, opts...)
	}
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if b.bar != nil {
		b.bar.Add64(n)
		return
	}
	if b.total > 0 && b.done*10 >= (b.nextLine+1)*b.total && b.done < b.total {
		b.nextLine = b.done * 10 / b.total
		fmt.Fprintf(b.w, "%s: %s (%d%%, %s)\n", b.desc, b.count(), b.done*100/b.total, time.Since(b.start).Round(time.Millisecond))
	}
}

// Finish closes the bar and prints the total time.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if b.bar != nil {
		b.bar.Finish()
		fmt.Fprintln(b.w)
	}
	fmt.Fprintf(b.w, "%s: done, %s in %s\n", b.desc, b.count(), time.Since(b.start).Round(time.Millisecond))
}

func (b *Bar) count() string {
	if b.bytes {
		return fmt.Sprintf("%.1f/%.1f MB", float64(b.done)/1e6, float64(b.total)/1e6)
	}
	return fmt.Sprintf("%d/%d", b.done, b.total)
}
