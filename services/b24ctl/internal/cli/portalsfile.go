package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/b24hub/b24hub/libs/portals"
	"go.yaml.in/yaml/v3"
)

// portalsDoc is the portals file as a YAML node tree. Commands edit the
// tree, not a decoded struct, so the operator's comments, key order and
// other entries survive, and a new entry carries only the keys it sets (no
// empty strings, no `active: null`).
type portalsDoc struct {
	doc  yaml.Node // the document node
	list *yaml.Node
}

// loadPortalsDoc reads path; a missing or empty file is an empty list.
func loadPortalsDoc(path string) (*portalsDoc, error) {
	d := &portalsDoc{}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.Unmarshal(data, &d.doc); err != nil {
			return nil, err
		}
	}
	if d.doc.Kind == 0 {
		d.doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	top := d.doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping with the key portals", top.Line)
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "portals" {
			continue
		}
		v := top.Content[i+1]
		switch {
		case v.Kind == yaml.SequenceNode:
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null": // `portals:` with nothing yet
			*v = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		default:
			return nil, fmt.Errorf("line %d: portals must be a list", v.Line)
		}
		d.list = v
		return d, nil
	}
	d.list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "portals"}, d.list)
	return d, nil
}

// find returns the mapping node of member's entry, or nil.
func (d *portalsDoc) find(member string) *yaml.Node {
	for _, p := range d.list.Content {
		if p.Kind == yaml.MappingNode && scalar(p, "member_id") == member {
			return p
		}
	}
	return nil
}

// scalar is the value of key in mapping m ("" when absent).
func scalar(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// setScalar sets key in mapping m to the string value, adding the key
// when absent.
func setScalar(m *yaml.Node, key, value string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

// newEntry is a portals-file entry with only the keys that are set. It
// has the fields of portals.FilePortal in their order, so a field added
// there stops this conversion from compiling instead of being dropped.
type newEntry struct {
	MemberID             string `yaml:"member_id"`
	ApplicationToken     string `yaml:"application_token,omitempty"`
	ApplicationTokenFile string `yaml:"application_token_file,omitempty"`
	Domain               string `yaml:"domain,omitempty"`
	WebhookURL           string `yaml:"webhook_url,omitempty"`
	WebhookURLFile       string `yaml:"webhook_url_file,omitempty"`
	Plan                 string `yaml:"plan,omitempty"`
	Active               *bool  `yaml:"active,omitempty"`
}

// add appends p as a new entry.
func (d *portalsDoc) add(p portals.FilePortal) error {
	var n yaml.Node
	if err := n.Encode(newEntry(p)); err != nil {
		return err
	}
	d.list.Style = 0 // `portals: []` grows into a block list
	d.list.Content = append(d.list.Content, &n)
	return nil
}

// bytes renders the document.
func (d *portalsDoc) bytes() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&d.doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// save validates the document the way every service will read it, then
// replaces path atomically (mode 0600: the file may hold tokens).
func (d *portalsDoc) save(path string) error {
	data, err := d.bytes()
	if err != nil {
		return err
	}
	if _, err := portals.ParseFile(data); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".portals-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
