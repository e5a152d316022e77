// Command mutate measures how well wxgate's tests catch bugs: it plants one
// small change at a time (a mutant) in a copy of the module, runs the tests
// of the mutated package that execute the changed line, and reports the
// mutants no test noticed. It is the `make mutation` target; docs/testing.md
// explains the score and the survivors judged harmless.
//
// Mutants are those of gremlins' default set plus && / ||:
//
//	arithmetic   + → -, - → +, * → /, / → *, % → *
//	boundary     < → <=, <= → <, > → >=, >= → >
//	negation     == ↔ !=, < → >=, <= → >, > → <=, >= → <
//	logical      && ↔ ||
//	incdec       ++ ↔ --
//	negative     -x → +x
//
// Each test of the package is first run alone with coverage, so a mutant
// runs only the tests that reach its line (and a line no test reaches is
// "not covered", counted as a survivor). A mutant that does not compile is
// "not viable" and not counted; one whose tests run past the timeout twice
// (the second time three times as long) is "timed out" and counted as
// caught.
//
// Usage (from the module root):
//
//	go run ./.ci/mutate [-workers 2] [-files REGEXP] [-out report.json] [-since old.json] ./internal/proxy ...
//
// With -since, the mutants an earlier report counted as caught keep that
// status and only the others are tried: valid while tests are only added,
// never weakened or removed, and the code under test is unchanged.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mutant statuses.
const (
	killed     = "KILLED"
	timedOut   = "TIMED OUT"
	lived      = "LIVED"
	notCovered = "NOT COVERED"
	notViable  = "NOT VIABLE"
)

// mutant is one planted change: the operator at Offset in File (relative to
// the module root) replaced by To.
type mutant struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Col    int    `json:"col"`
	Kind   string `json:"kind"`
	From   string `json:"from"`
	To     string `json:"to"`
	Offset int    `json:"-"`
	Status string `json:"status"`
	Source string `json:"source"`
	tests  []string
}

func (m mutant) String() string {
	return fmt.Sprintf("%s:%d:%d %s %s → %s", m.File, m.Line, m.Col, m.Kind, m.From, m.To)
}

// pkgReport is one package's result.
type pkgReport struct {
	Package string   `json:"package"`
	Files   string   `json:"files,omitempty"`
	Sample  int      `json:"sample,omitempty"`
	Score   float64  `json:"score"`
	Counts  counts   `json:"counts"`
	Mutants []mutant `json:"mutants"`
}

type counts struct {
	Killed     int `json:"killed"`
	TimedOut   int `json:"timed_out"`
	Lived      int `json:"lived"`
	NotCovered int `json:"not_covered"`
	NotViable  int `json:"not_viable"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("mutate", flag.ContinueOnError)
	workers := fl.Int("workers", 2, "mutants tested at once")
	files := fl.String("files", "", "only mutate the package's files whose name matches this regexp")
	out := fl.String("out", "", "write the JSON report here")
	minTimeout := fl.Duration("timeout", 2*time.Minute, "time one mutant's build and tests may take, on top of ten times its tests' own time")
	sample := fl.Int("sample", 1, "keep every n-th mutant of each package (in source order) to bound the run's time")
	since := fl.String("since", "", "a previous JSON report: mutants it found caught keep that status (tests were only added since), the others are tried again")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		return errors.New("name at least one package directory, e.g. ./internal/proxy")
	}
	var only *regexp.Regexp
	if *files != "" {
		var err error
		if only, err = regexp.Compile(*files); err != nil {
			return err
		}
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	module, err := modulePath(root)
	if err != nil {
		return err
	}
	var previous map[string]string
	if *since != "" {
		if previous, err = caught(*since); err != nil {
			return err
		}
	}
	var reports []pkgReport
	for _, dir := range fl.Args() {
		rep, err := measure(root, module, filepath.Clean(dir), only, *sample, *workers, *minTimeout, previous)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		rep.Files = *files
		reports = append(reports, rep)
		printReport(rep)
	}
	if *out != "" {
		b, _ := json.MarshalIndent(reports, "", "  ")
		return os.WriteFile(*out, b, 0o644)
	}
	return nil
}

func modulePath(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("run from the module root: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "module "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", errors.New("go.mod names no module")
}

// measure runs every mutant of the package in dir.
func measure(root, module, dir string, only *regexp.Regexp, sample, workers int, minTimeout time.Duration, previous map[string]string) (pkgReport, error) {
	rep := pkgReport{Package: dir, Sample: sample}
	muts, err := mutants(root, dir, only)
	if err != nil {
		return rep, err
	}
	if sample > 1 {
		var kept []mutant
		for i, m := range muts {
			if i%sample == 0 {
				kept = append(kept, m)
			}
		}
		muts = kept
	}
	fmt.Fprintf(os.Stderr, "%s: %d mutants; measuring which tests reach which line\n", dir, len(muts))
	cov, took, err := coverage(root, module, dir)
	if err != nil {
		return rep, err
	}
	var queue []*mutant
	for i := range muts {
		m := &muts[i]
		if st, ok := previous[m.String()]; ok {
			m.Status = st
			continue
		}
		m.tests = cov[lineKey{m.File, m.Line}]
		if len(m.tests) == 0 {
			m.Status = notCovered
			continue
		}
		queue = append(queue, m)
	}
	// Each worker mutates its own copy of the module, built once before
	// the first mutant so no mutant's time budget pays for a cold build.
	copies := make([]string, workers)
	for i := range copies {
		if copies[i], err = copyModule(root); err != nil {
			return rep, err
		}
		defer os.RemoveAll(copies[i])
		warm := exec.Command("go", "test", "-count=1", "-vet=off", "-run", "^$", "./"+dir)
		warm.Dir = copies[i]
		if out, err := warm.CombinedOutput(); err != nil {
			return rep, fmt.Errorf("build the copy: %v\n%s", err, tail(out))
		}
	}
	jobs := make(chan *mutant)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for _, c := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				var budget time.Duration
				for _, t := range m.tests {
					budget += took[t]
				}
				// A run past its time is tried once more with three times
				// as long, so a loaded machine does not pass for a mutant
				// that loops.
				timeout := minTimeout + 10*budget
				if m.Status = try(c, dir, m, timeout); m.Status == timedOut {
					m.Status = try(c, dir, m, 3*timeout)
				}
				mu.Lock()
				done++
				fmt.Fprintf(os.Stderr, "[%d/%d] %-11s %s\n", done, len(queue), m.Status, m)
				mu.Unlock()
			}
		}()
	}
	for _, m := range queue {
		jobs <- m
	}
	close(jobs)
	wg.Wait()
	rep.Mutants = muts
	for _, m := range muts {
		switch m.Status {
		case killed:
			rep.Counts.Killed++
		case timedOut:
			rep.Counts.TimedOut++
		case lived:
			rep.Counts.Lived++
		case notCovered:
			rep.Counts.NotCovered++
		case notViable:
			rep.Counts.NotViable++
		}
	}
	c := rep.Counts
	if total := c.Killed + c.TimedOut + c.Lived + c.NotCovered; total > 0 {
		rep.Score = 100 * float64(c.Killed+c.TimedOut) / float64(total)
	}
	return rep, nil
}

// caught reads a previous report: the status of each mutant it counted as
// caught (killed, timed out) or not viable, by mutant.
func caught(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reports []pkgReport
	if err := json.Unmarshal(b, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	for _, r := range reports {
		for _, m := range r.Mutants {
			if m.Status == killed || m.Status == timedOut || m.Status == notViable {
				out[m.String()] = m.Status
			}
		}
	}
	return out, nil
}

// mutants lists the mutants of the non-test Go files in dir.
func mutants(root, dir string, only *regexp.Regexp) ([]mutant, error) {
	entries, err := os.ReadDir(filepath.Join(root, dir))
	if err != nil {
		return nil, err
	}
	var out []mutant
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || (only != nil && !only.MatchString(name)) {
			continue
		}
		rel := filepath.Join(dir, name)
		src, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return nil, err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, rel, src, 0)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(src), "\n")
		add := func(pos token.Pos, kind string, from, to token.Token) {
			p := fset.Position(pos)
			out = append(out, mutant{File: rel, Line: p.Line, Col: p.Column, Offset: p.Offset, Kind: kind,
				From: from.String(), To: to.String(), Source: strings.TrimSpace(lines[p.Line-1])})
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GenDecl:
				// Constants and package-level variables are computed at
				// compile or init time; mutating them mostly breaks the
				// build or the table they define, not a behaviour.
				return n.Tok != token.CONST
			case *ast.BinaryExpr:
				for _, r := range binaryMutations[n.Op] {
					if n.Op == token.ADD && (isString(n.X) || isString(n.Y)) {
						continue
					}
					add(n.OpPos, r.kind, n.Op, r.to)
				}
			case *ast.IncDecStmt:
				to := token.DEC
				if n.Tok == token.DEC {
					to = token.INC
				}
				add(n.TokPos, "incdec", n.Tok, to)
			case *ast.UnaryExpr:
				if n.Op == token.SUB {
					add(n.OpPos, "negative", token.SUB, token.ADD)
				}
			}
			return true
		})
	}
	return out, nil
}

type replacement struct {
	kind string
	to   token.Token
}

var binaryMutations = map[token.Token][]replacement{
	token.ADD:  {{"arithmetic", token.SUB}},
	token.SUB:  {{"arithmetic", token.ADD}},
	token.MUL:  {{"arithmetic", token.QUO}},
	token.QUO:  {{"arithmetic", token.MUL}},
	token.REM:  {{"arithmetic", token.MUL}},
	token.LSS:  {{"boundary", token.LEQ}, {"negation", token.GEQ}},
	token.LEQ:  {{"boundary", token.LSS}, {"negation", token.GTR}},
	token.GTR:  {{"boundary", token.GEQ}, {"negation", token.LEQ}},
	token.GEQ:  {{"boundary", token.GTR}, {"negation", token.LSS}},
	token.EQL:  {{"negation", token.NEQ}},
	token.NEQ:  {{"negation", token.EQL}},
	token.LAND: {{"logical", token.LOR}},
	token.LOR:  {{"logical", token.LAND}},
}

func isString(e ast.Expr) bool {
	l, ok := e.(*ast.BasicLit)
	return ok && (l.Kind == token.STRING || l.Kind == token.CHAR)
}

type lineKey struct {
	file string
	line int
}

// coverage runs each test of the package alone with coverage and returns,
// for each line of the package, the tests that executed it, and how long
// each test took.
func coverage(root, module, dir string) (map[lineKey][]string, map[string]time.Duration, error) {
	tmp, err := os.MkdirTemp("", "mutate-cover-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "pkg.test")
	build := exec.Command("go", "test", "-c", "-cover", "-o", bin, "./"+dir)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("build the tests: %v\n%s", err, out)
	}
	list := exec.Command(bin, "-test.list", ".")
	list.Dir = filepath.Join(root, dir)
	out, err := list.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("list the tests: %v", err)
	}
	var tests []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Test") || strings.HasPrefix(l, "Fuzz") || strings.HasPrefix(l, "Example") {
			tests = append(tests, l)
		}
	}
	cov := map[lineKey][]string{}
	took := map[string]time.Duration{}
	for i, t := range tests {
		profile := filepath.Join(tmp, fmt.Sprintf("%d.cover", i))
		start := time.Now()
		cmd := exec.Command(bin, "-test.run", "^"+t+"$", "-test.count", "1", "-test.coverprofile", profile)
		cmd.Dir = filepath.Join(root, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("%s fails without any mutant: %v\n%s", t, err, tail(out))
		}
		took[t] = time.Since(start)
		lines, err := coveredLines(profile, module)
		if err != nil {
			return nil, nil, err
		}
		for k := range lines {
			cov[k] = append(cov[k], t)
		}
		fmt.Fprintf(os.Stderr, "  %-70s %6.1fs %5d lines\n", t, took[t].Seconds(), len(lines))
	}
	return cov, took, nil
}

// coveredLines reads a cover profile: the lines of blocks run at least once.
func coveredLines(profile, module string) (map[lineKey]bool, error) {
	f, err := os.Open(profile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lines := map[lineKey]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// name.go:startLine.startCol,endLine.endCol numStmts count
		l := sc.Text()
		if strings.HasPrefix(l, "mode:") {
			continue
		}
		file, rest, ok := strings.Cut(l, ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) != 3 || fields[2] == "0" {
			continue
		}
		from, to, _ := strings.Cut(fields[0], ",")
		start, _ := strconv.Atoi(strings.Split(from, ".")[0])
		end, _ := strconv.Atoi(strings.Split(to, ".")[0])
		rel := strings.TrimPrefix(strings.TrimPrefix(file, module), "/")
		for n := start; n <= end; n++ {
			lines[lineKey{rel, n}] = true
		}
	}
	return lines, sc.Err()
}

// try plants m in the module copy at dir, runs its tests and restores the file.
func try(copyRoot, dir string, m *mutant, timeout time.Duration) string {
	path := filepath.Join(copyRoot, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return notViable
	}
	mutated := append(append(append([]byte(nil), orig[:m.Offset]...), m.To...), orig[m.Offset+len(m.From):]...)
	if err := os.WriteFile(path, mutated, 0o644); err != nil {
		return notViable
	}
	defer os.WriteFile(path, orig, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sort.Strings(m.tests)
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-vet=off", "-failfast",
		"-timeout", (timeout + 30*time.Second).String(), "-run", "^("+strings.Join(m.tests, "|")+")$", "./"+dir)
	cmd.Dir = copyRoot
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	switch {
	case ctx.Err() != nil:
		return timedOut
	case err == nil:
		return lived
	case bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")):
		return notViable
	}
	return killed
}

// copyModule copies the module's source (no .git, no build output) to a
// temporary directory.
func copyModule(root string) (string, error) {
	dst, err := os.MkdirTemp("", "mutate-module-")
	if err != nil {
		return "", err
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	return dst, err
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

func printReport(r pkgReport) {
	c := r.Counts
	sampled := ""
	if r.Sample > 1 {
		sampled = fmt.Sprintf(" (every %d. mutant)", r.Sample)
	}
	fmt.Printf("%s%s%s: score %.1f%% (killed %d, timed out %d, lived %d, not covered %d; not viable %d)\n",
		r.Package, filesNote(r.Files), sampled, r.Score, c.Killed, c.TimedOut, c.Lived, c.NotCovered, c.NotViable)
	for _, m := range r.Mutants {
		if m.Status == lived || m.Status == notCovered {
			fmt.Printf("  %-11s %s\t%s\n", m.Status, m, m.Source)
		}
	}
}

func filesNote(files string) string {
	if files == "" {
		return ""
	}
	return " (files " + files + ")"
}
