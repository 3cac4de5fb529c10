package bitrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ID is a Bitrix24 entity ID. The API sends IDs as numbers or strings, even
// within one response (§4.3), and sometimes as "" or null for "none"; ID
// accepts all of them. It marshals as a JSON number.
type ID int64

// UnmarshalJSON accepts 123, "123", "", null and 123.0.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte("false")) {
		*id = 0
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*id = 0
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return fmt.Errorf("bitrix: invalid ID %s", b)
		}
		n = int64(f)
	}
	*id = ID(n)
	return nil
}

// String returns the decimal form, as Bitrix24 expects it in parameters.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// ParseID parses a decimal ID such as an event's data[FIELDS][ID].
func ParseID(s string) (ID, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bitrix: invalid ID %q", s)
	}
	return ID(n), nil
}

// flexInt is a count that may arrive as a number or a string.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	var id ID
	if err := id.UnmarshalJSON(b); err != nil {
		return err
	}
	*n = flexInt(id)
	return nil
}

// flexFloat is a number that may arrive quoted.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(bytes.TrimSpace(b), `"`)
	if len(b) == 0 || string(b) == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("bitrix: invalid number %s", b)
	}
	*f = flexFloat(v)
	return nil
}
