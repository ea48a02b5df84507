// Command standin stands in for an application container in the Docker
// tests: each start appends a line to /data/starts.log, SIGTERM ends it, and
// `standin -health` fails while /data/unhealthy exists (the image's health
// check). It is built statically into a FROM scratch image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-health" {
		if _, err := os.Stat("/data/unhealthy"); err == nil {
			fmt.Println("unhealthy: /data/unhealthy exists")
			os.Exit(1)
		}
		os.Exit(0)
	}
	host, _ := os.Hostname()
	f, err := os.OpenFile("/data/starts.log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644) // #nosec G302 -- a test program's log, read by the test
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(f, "start %s %s\n", host, time.Now().UTC().Format(time.RFC3339Nano))
	f.Close() // #nosec G104 -- closed on an error path or after use; the error that matters is returned
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
