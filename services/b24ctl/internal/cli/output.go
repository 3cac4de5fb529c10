package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Output formats of -o/--output.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

var formats = map[string]bool{formatTable: true, formatJSON: true, formatYAML: true}

// outputFlag adds -o/--output to a command that prints a result.
func outputFlag(cmd *cobra.Command) *string {
	var f string
	cmd.Flags().StringVarP(&f, "output", "o", formatTable, "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{formatTable, formatJSON, formatYAML}, cobra.ShellCompDirectiveNoFileComp))
	return &f
}

// printer writes results in one output format.
type printer struct {
	format string
	w      io.Writer
}

func printerFor(format string, w io.Writer) printer { return printer{format: format, w: w} }

// print writes v as JSON or YAML, or calls table for humans. JSON and YAML
// use the same field names (v's json tags), so a script may switch.
func (p printer) print(v any, table func(w io.Writer)) error {
	switch p.format {
	case formatJSON:
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case formatYAML:
		b, err := toYAML(v)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	default:
		if table != nil {
			table(p.w)
		}
		return nil
	}
}

// line writes one item of a stream (events tail): a compact JSON line, a
// YAML document, or the text line.
func (p printer) line(v any, text string) error {
	switch p.format {
	case formatJSON:
		return json.NewEncoder(p.w).Encode(v)
	case formatYAML:
		b, err := toYAML(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "---\n%s", b)
		return err
	default:
		_, err := fmt.Fprintln(p.w, text)
		return err
	}
}

// toYAML renders v as YAML with the keys and key order of its JSON form:
// the JSON is read as a YAML node tree (JSON is YAML), then printed in
// block style.
func toYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, err
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blockStyle clears the flow and quoting styles the JSON source gave; the
// encoder still quotes a string that would read back as another type.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// table prints rows under header, aligned.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}
