package render

import (
	"strings"
	"testing"
)

// FuzzFillFragment: whatever the hand-written file around the markers, a
// successful fill keeps everything outside them byte for byte, puts the
// content between them, and filling again changes nothing (so a rendered
// repository is never stale against itself).
func FuzzFillFragment(f *testing.F) {
	f.Add("a\n<!-- generated:x:begin -->\nold\n<!-- generated:x:end -->\nb\n", "new\n")
	f.Add("# generated:x:begin\n# generated:x:end\n", "")
	f.Add("  # generated:x:begin (note)\n  - a\n  # generated:x:end\n", "  - b\n  - c\n")
	f.Add("generated:x:begin", "x\n")
	f.Add("generated:x:end\ngenerated:x:begin\n", "y\n")
	f.Fuzz(func(t *testing.T, text, content string) {
		if strings.Contains(content, "generated:x:") || (content != "" && !strings.HasSuffix(content, "\n")) {
			t.Skip("content holds a marker or no final newline: the renderer never makes such")
		}
		out, err := fillFragment(text, "x", content)
		if err != nil {
			return
		}
		b := strings.Index(out, "generated:x:begin")
		start := b + strings.IndexByte(out[b:], '\n') + 1
		if !strings.HasPrefix(out[start:], content) {
			t.Fatalf("content not right after the begin line:\n%q", out)
		}
		if !strings.HasPrefix(text, out[:start]) {
			t.Fatalf("text before the fragment changed:\n%q\n%q", text, out)
		}
		rest := out[start+len(content):]
		if !strings.HasSuffix(text, rest) || !strings.Contains(rest, "generated:x:end") {
			t.Fatalf("text after the fragment changed:\n%q\n%q", text, out)
		}
		again, err := fillFragment(out, "x", content)
		if err != nil || again != out {
			t.Fatalf("filling twice differs (%v):\n%q\n%q", err, out, again)
		}
	})
}
