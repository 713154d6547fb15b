// Command genjournal writes a generated journal (see package gen) for
// benchmarks:
//
//	go run ./journal/internal/gen/genjournal -o /tmp/journal-1g.jsonl -mib 1024
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aion-dispatch/dispatch/journal/internal/gen"
)

func main() {
	out := flag.String("o", "", "the journal to write (replaced if it exists)")
	mib := flag.Int64("mib", 1024, "its size in MiB")
	open := flag.Int("open", 64, "conversations open at once")
	seed := flag.Uint64("seed", 1, "the random seed")
	flag.Parse()
	if *out == "" || *mib <= 0 {
		fmt.Fprintln(os.Stderr, "usage: genjournal -o FILE [-mib N] [-open N] [-seed N]")
		os.Exit(2)
	}
	if err := write(*out, gen.Options{Bytes: *mib << 20, Open: *open, Seed: *seed}); err != nil {
		fmt.Fprintln(os.Stderr, "genjournal:", err)
		os.Exit(1)
	}
}

func write(path string, opts gen.Options) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.Copy(w, gen.New(opts)); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
