//go:build ignore

// Reads every record of a data file with ortrain's streaming record reader
// (what data.Load and data.OpenStream read through) and prints the count,
// the text bytes read and the Go heap's peak, as JSON. scripts/bench/columnar_rss.sh
// runs it under GNU time for the peak RSS.
//
//	go run scripts/bench/columnar_rss.go -source_lang en -target_lang ro FILE
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/ortrain/ortrain/internal/data"
)

func main() {
	src := flag.String("source_lang", "", "source language of translation records")
	tgt := flag.String("target_lang", "", "target language")
	flag.Parse()
	start := time.Now()
	r, err := data.OpenRecords(flag.Arg(0), data.Format{SourceLang: *src, TargetLang: *tgt}, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var n, bytes int
	var peak uint64
	var ms runtime.MemStats
	for r.Next() {
		ex := r.Example()
		n++
		bytes += len(ex.Source)
		for _, t := range ex.Targets {
			bytes += len(t)
		}
		if n%100_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := r.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r.Close()
	json.NewEncoder(os.Stdout).Encode(map[string]any{"records": n, "text_bytes": bytes,
		"peak_heap_inuse_mb": float64(peak) / (1 << 20), "seconds": time.Since(start).Seconds()})
}
