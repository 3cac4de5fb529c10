package svcmain

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// ParseEnv fills cfg, a pointer to a settings struct, from getenv with
// github.com/caarlos0/env: each field names its variable in an `env` tag,
// its default in `envDefault`, and may be `required`; a `file` field reads
// the file its variable names (the B24HUB_*_FILE secrets). An empty
// variable counts as unset.
//
// On top of the library, every time.Duration must be positive, unless its
// field has a `zero` tag saying what 0 means (`zero:"disables the probe"`),
// and when cfg has a Validate() error method it is called last. Every
// problem is reported at once (errors.Join), each naming its variable.
func ParseEnv(getenv func(string) string, cfg any) error {
	params, err := env.GetFieldParams(cfg)
	if err != nil {
		return err
	}
	vars := map[string]string{}
	for _, p := range params {
		if v := getenv(p.Key); v != "" {
			vars[p.Key] = v
		}
	}
	keys := fieldKeys(reflect.TypeOf(cfg).Elem())
	var errs []error
	if err := env.ParseWithOptions(cfg, env.Options{Environment: vars}); err != nil {
		var agg env.AggregateError
		if !errors.As(err, &agg) {
			return err
		}
		for _, e := range agg.Errors {
			var pe env.ParseError
			if errors.As(e, &pe) && keys[pe.Name] != "" {
				key := keys[pe.Name]
				e = fmt.Errorf("%s=%q: %w", key, vars[key], pe.Err)
			}
			errs = append(errs, e)
		}
	}
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := keys[f.Name]
		if f.Type != reflect.TypeFor[time.Duration]() || key == "" {
			continue
		}
		d := time.Duration(v.Field(i).Int())
		_, zeroOK := f.Tag.Lookup("zero")
		if d < 0 || d == 0 && !zeroOK {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration like 10s", key, vars[key]))
		}
	}
	if len(errs) == 0 {
		if c, ok := cfg.(interface{ Validate() error }); ok {
			return c.Validate()
		}
	}
	return errors.Join(errs...)
}

// fieldKeys maps the top-level fields of t to their variables.
func fieldKeys(t reflect.Type) map[string]string {
	keys := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			keys[f.Name] = name
		}
	}
	return keys
}
