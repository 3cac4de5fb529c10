package bitrix

import (
	"bytes"
	"fmt"
	"strings"
)

// Bool is a Bitrix24 flag, sent as "Y"/"N", true/false, 1/0 or "1"/"0"
// depending on the method. Empty and null are false.
type Bool bool

// UnmarshalJSON accepts every spelling above.
func (b *Bool) UnmarshalJSON(data []byte) error {
	s := strings.ToUpper(strings.Trim(string(bytes.TrimSpace(data)), `"`))
	switch s {
	case "Y", "TRUE", "1":
		*b = true
	case "N", "FALSE", "0", "", "NULL":
		*b = false
	default:
		return fmt.Errorf("bitrix: invalid flag %s", data)
	}
	return nil
}
