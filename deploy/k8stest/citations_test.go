package k8stest

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var (
	// citationRe is a "§n" or "§n.n" citation of docs/bitrix24.md.
	citationRe = regexp.MustCompile(`§(\d+(?:\.\d+)*)`)
	// sectionRe is a numbered heading of docs/bitrix24.md: "## 4. The REST
	// API" or "### 4.5 Request-rate limit".
	sectionRe = regexp.MustCompile(`^#{2,4} (\d+(?:\.\d+)*)\.? `)
)

// bitrix24Sections returns the section numbers of docs/bitrix24.md.
func bitrix24Sections(t *testing.T) map[string]bool {
	t.Helper()
	sections := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "docs/bitrix24.md")))
	for sc.Scan() {
		if m := sectionRe.FindStringSubmatch(sc.Text()); m != nil {
			if sections[m[1]] {
				t.Errorf("docs/bitrix24.md: section %s appears twice", m[1])
			}
			sections[m[1]] = true
		}
	}
	return sections
}

// TestBitrix24Citations: every "§n.n" in any .go file of the repository
// (tests included) names a section of docs/bitrix24.md, the repository's
// account of the Bitrix24 behaviour the code relies on; so do the page's own
// cross-references.
func TestBitrix24Citations(t *testing.T) {
	sections := bitrix24Sections(t)
	if len(sections) < 40 {
		t.Fatalf("docs/bitrix24.md: only %d numbered sections", len(sections))
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(root, "docs", "bitrix24.md")}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := 0
	missing := map[string][]string{}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range citationRe.FindAllStringSubmatch(line, -1) {
				cited++
				if !sections[m[1]] {
					missing[m[1]] = append(missing[m[1]], rel+":"+strconv.Itoa(i+1))
				}
			}
		}
	}
	if cited < 100 {
		t.Fatalf("only %d citations found in %d files: is the scan looking at the code?", cited, len(files))
	}
	var keys []string
	for k := range missing {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Errorf("§%s is cited but docs/bitrix24.md has no section %s: %s", k, k, strings.Join(missing[k], ", "))
	}
}
