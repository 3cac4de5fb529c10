package b24event

import (
	"fmt"
	"strings"
)

// The two media types Decode accepts, in the normalized form stored in
// Body.ContentType.
const (
	ContentTypeForm = "application/x-www-form-urlencoded"
	ContentTypeJSON = "application/json"
)

// Field is one key=value pair of a form body, key in PHP bracket notation
// (e.g. "data[FIELDS][ID]"), both percent-decoded.
type Field struct{ Key, Value string }

// Body is a decoded request body.
//
// Fields is the source of truth: Redacted and RedactedTree are derived from
// it, so they stay consistent with each other (decoding Redacted() yields
// exactly RedactedTree()). Tree is the PHP view of the same pairs and shares
// its strings with Fields. Treat a Body as read-only; its methods only read,
// so one Body may be used from several goroutines.
type Body struct {
	// ContentType is the normalized media type: ContentTypeForm or
	// ContentTypeJSON.
	ContentType string
	// Fields holds the pairs in arrival order, duplicates included (for JSON
	// bodies: the flattened equivalent, in document order).
	Fields []Field
	// Tree holds the PHP array: values are string or map[string]any;
	// numeric keys stay map keys ("0", "567").
	Tree map[string]any

	// rawLen is the size of the body as received, a good first guess for
	// the size of Redacted().
	rawLen int
}

// Decode parses a body by its Content-Type header value. Parameters such as
// charset are allowed and ignored (Bitrix24 sends UTF-8; bytes are kept as
// they are, invalid UTF-8 included). Form and JSON bodies are accepted,
// anything else is ErrUnsupportedContentType.
//
// Limits are applied in the order of the work they protect: body size
// (ErrBodyTooLarge) first, then the pair count (ErrTooManyKeys), then per key
// its length (ErrKeyTooLong), syntax (ErrMalformed), depth (ErrTooDeep) and
// the running total of depths (ErrTooManyKeys), all before the tree is
// built.
// Invalid percent-encoding and invalid JSON are ErrMalformed. Zero fields of
// lim take the defaults of DefaultLimits.
//
// An empty form body decodes to a Body without fields; Event then reports
// what is missing.
func Decode(contentType string, body []byte, lim Limits) (*Body, error) {
	ct, fields, err := decodeFields(contentType, body, lim)
	if err != nil {
		return nil, err
	}
	return &Body{ContentType: ct, Fields: fields, Tree: buildTree(fields), rawLen: len(body)}, nil
}

// decodeFields is Decode up to the pairs: the limits, the media type and
// the percent- or JSON-decoding.
func decodeFields(contentType string, body []byte, lim Limits) (string, []Field, error) {
	lim = lim.withDefaults()
	if len(body) > lim.MaxBodyBytes {
		return "", nil, fmt.Errorf("%w: %d bytes > %d", ErrBodyTooLarge, len(body), lim.MaxBodyBytes)
	}
	var (
		fields []Field
		err    error
	)
	ct := mediaType(contentType)
	switch ct {
	case ContentTypeForm:
		fields, err = decodeForm(body, lim)
	case ContentTypeJSON:
		fields, err = flattenJSON(body, lim)
	default:
		return "", nil, fmt.Errorf("%w: %q", ErrUnsupportedContentType, clip(contentType))
	}
	return ct, fields, err
}

// mediaType returns the normalized media type of a Content-Type header value
// if it is one Decode accepts, else "". It does not use mime.ParseMediaType:
// that allocates a parameter map on every request, and parameters are
// ignored anyway.
func mediaType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimSpace(v)
	switch {
	case strings.EqualFold(v, ContentTypeForm):
		return ContentTypeForm
	case strings.EqualFold(v, ContentTypeJSON):
		return ContentTypeJSON
	}
	return ""
}
