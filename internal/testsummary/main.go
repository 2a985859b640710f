// Command testsummary reads `go test -json` events on stdin, prints package
// results as `go test` does plus the output of failing tests, and ends with
// one line "N passed, N failed, N skipped". It exits non-zero when anything
// failed or no test ran.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	os.Exit(summarize())
}

func summarize() int {
	outputs := map[string]*strings.Builder{} // package/test -> output
	var passed, failed, skipped int
	var failedNames []string
	pkgHadFailure := map[string]bool{}
	var skippedNames []string
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		line := in.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			fmt.Println(string(line)) // build errors arrive as plain text
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			b.WriteString(e.Output)
			if e.Test == "" && (strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "?")) {
				fmt.Print(e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
			}
			delete(outputs, key)
		case "skip":
			if e.Test != "" {
				skipped++
				msg := ""
				if b := outputs[key]; b != nil {
					msg = lastLine(b.String())
				}
				skippedNames = append(skippedNames, fmt.Sprintf("%s %s: %s", e.Package, e.Test, msg))
			}
			delete(outputs, key)
		case "fail":
			if e.Test != "" {
				failed++
				failedNames = append(failedNames, key)
				pkgHadFailure[e.Package] = true
				if b := outputs[key]; b != nil {
					fmt.Printf("--- FAIL: %s\n%s", key, b.String())
				}
			} else if b := outputs[key]; b != nil && !pkgHadFailure[e.Package] {
				fmt.Print(b.String()) // a package that failed outside any test (build, panic, TestMain)
				failed++
				failedNames = append(failedNames, e.Package+" (package)")
			}
		}
	}
	sort.Strings(skippedNames)
	if len(skippedNames) > 0 {
		fmt.Println("skipped:")
		for _, s := range skippedNames {
			fmt.Println("  " + s)
		}
	}
	if len(failedNames) > 0 {
		fmt.Println("failed:")
		for _, s := range failedNames {
			fmt.Println("  " + s)
		}
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || passed == 0 {
		return 1
	}
	return 0
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
