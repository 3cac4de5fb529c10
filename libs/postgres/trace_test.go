package postgres

import "testing"

func TestVerb(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1":                             "SELECT",
		"  insert into x values ($1)":          "INSERT",
		"-- why\nUPDATE t SET a = 1":           "UPDATE",
		"WITH x AS (SELECT 1) SELECT * FROM x": "WITH",
		"begin;":                               "BEGIN",
		"SELECT(1)":                            "SELECT",
		"":                                     "QUERY",
		"averyveryveryverylongword x":          "QUERY",
	} {
		if got := verb(sql); got != want {
			t.Errorf("verb(%q) = %q, want %q", sql, got, want)
		}
	}
}
