// Command report turns the JUnit reports of a conformance run into
// docs/conformance.md: totals, passed / failed / skipped per SIG, and each
// failure with the first line of its message and the skiff part at fault
// (from causes.tsv, kept by hand as failures are understood).
package main

import (
	"bufio"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

type junit struct {
	Suites []struct {
		Cases []testCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type testCase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Failure *struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	} `xml:"failure"`
	Skipped *struct{} `xml:"skipped"`
}

// result is one conformance spec's outcome over all reports of the run.
type result struct {
	name, sig, status, message string
}

// cause attributes failures whose name matches re to a part of skiff.
type cause struct {
	re   *regexp.Regexp
	text string
	// later: an API group a later issue of the round brings; such tests
	// are left out of the target's percentage.
	later bool
}

var sigRE = regexp.MustCompile(`^\[(sig-[a-z-]+)\]`)

func main() {
	reports := flag.String("reports", "", "directory holding the runs' junit.xml files")
	commit := flag.String("commit", "", "commit under test")
	minutes := flag.Int("minutes", 0, "minutes the suite took")
	out := flag.String("out", "", "Markdown file to write")
	causesFile := flag.String("causes", "causes.tsv", "regex<TAB>cause lines")
	flag.Parse()
	results, err := load(*reports)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	causes, err := loadCauses(*causesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	md := render(results, causes, *commit, *minutes, time.Now().UTC())
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// load reads every junit.xml under dir; a spec run in several reports (the
// parallel and the serial run both list every spec) keeps the outcome of
// the report that ran it.
func load(dir string) (map[string]*result, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "junit.xml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no junit.xml under %s: %v", dir, err)
	}
	results := map[string]*result{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var j junit
		if err := xml.Unmarshal(data, &j); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, s := range j.Suites {
			for _, c := range s.Cases {
				if !strings.Contains(c.Name, "[Conformance]") {
					continue
				}
				name := strings.TrimSpace(strings.TrimPrefix(c.Name, "[It] "))
				r := &result{name: name, sig: "other", status: outcome(c)}
				if m := sigRE.FindStringSubmatch(name); m != nil {
					r.sig = m[1]
				}
				if c.Failure != nil {
					r.message = firstLine(c.Failure.Message + "\n" + c.Failure.Text)
				}
				if prev, ok := results[name]; ok && prev.status != "skipped" {
					continue
				}
				results[name] = r
			}
		}
	}
	return results, nil
}

func outcome(c testCase) string {
	switch {
	case c.Failure != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "timedout" || c.Status == "interrupted":
		return "failed"
	case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
		return "skipped"
	}
	return "passed"
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 240 {
				l = l[:240] + "…"
			}
			return l
		}
	}
	return ""
}

func loadCauses(path string) ([]cause, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cause
	later := true // causes.tsv lists the later issues' groups first
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# Open") {
			later = false
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		re, text, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("%s: no tab in %q", path, line)
		}
		c, err := regexp.Compile(re)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, cause{re: c, text: strings.TrimSpace(text), later: later})
	}
	return out, sc.Err()
}

func attribute(name string, causes []cause) cause {
	for _, c := range causes {
		if c.re.MatchString(name) {
			return c
		}
	}
	return cause{text: "not yet analysed"}
}

func render(results map[string]*result, causes []cause, commit string, minutes int, now time.Time) string {
	type tally struct{ passed, failed, skipped int }
	bySIG := map[string]*tally{}
	var total tally
	var failed []*result
	for _, r := range results {
		t := bySIG[r.sig]
		if t == nil {
			t = &tally{}
			bySIG[r.sig] = t
		}
		switch r.status {
		case "passed":
			t.passed++
			total.passed++
		case "failed":
			t.failed++
			total.failed++
			failed = append(failed, r)
		default:
			t.skipped++
			total.skipped++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Conformance\n\nUpstream's conformance suite (`e2e.test` of the Kubernetes release in\ntest/conformance/go.mod) against a two-node skiff, run by `make conformance`\n(test/conformance/run.sh). Regenerated by every full run; do not edit by hand\n(failure causes live in test/conformance/causes.tsv).\n\n")
	fmt.Fprintf(&b, "- date: %s\n- commit: %s\n- suite time: %d minutes (2 cores; building the suite adds about 25 minutes the first time)\n", now.Format("2006-01-02 15:04 MST"), commit, minutes)
	ran := total.passed + total.failed
	pct := 0.0
	if ran > 0 {
		pct = 100 * float64(total.passed) / float64(ran)
	}
	fmt.Fprintf(&b, "- **%d passed, %d failed** of %d run (%.1f %%); %d skipped\n", total.passed, total.failed, ran, pct, total.skipped)
	later := 0
	for _, r := range failed {
		if attribute(r.name, causes).later {
			later++
		}
	}
	if own := ran - later; own > 0 {
		fmt.Fprintf(&b, "- without the %d failing tests of API groups that later issues bring (identity and authorization, admission, the extension API; their causes below say which): **%d of %d (%.1f %%)**\n",
			later, total.passed, own, 100*float64(total.passed)/float64(own))
	}
	b.WriteString("\n")
	b.WriteString("| SIG | passed | failed | skipped |\n| --- | ---: | ---: | ---: |\n")
	sigs := make([]string, 0, len(bySIG))
	for s := range bySIG {
		sigs = append(sigs, s)
	}
	sort.Strings(sigs)
	for _, s := range sigs {
		t := bySIG[s]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", s, t.passed, t.failed, t.skipped)
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].name < failed[j].name })
	b.WriteString("\n## Failures\n\n")
	if len(failed) == 0 {
		b.WriteString("None.\n")
	}
	for _, r := range failed {
		fmt.Fprintf(&b, "- %s\n  - cause: %s\n  - first line: `%s`\n", r.name, attribute(r.name, causes).text, strings.ReplaceAll(r.message, "`", "'"))
	}
	return b.String()
}
