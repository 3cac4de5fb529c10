// Package web is the monitor's dashboard: static HTML, CSS and vanilla
// JavaScript embedded in the binary (no front-end build step). The page
// calls the JSON API under /api/v1 with the session cookie set at login.
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
)

//go:embed static
var static embed.FS

// Assets returns the dashboard files (index.html, app.js, style.css).
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

var login = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>b24hub monitor — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;background:#f4f6f8;display:flex;justify-content:center;padding-top:12vh}
form{background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002;min-width:320px}
input{width:100%;box-sizing:border-box;padding:.5em;margin:.5em 0 1em}button{padding:.5em 1.5em}
.err{color:#b00020}</style></head>
<body><form method="post" action="/login" id="login">
<h2>b24hub monitor</h2>
{{if .}}<p class="err" id="login-error">{{.}}</p>{{end}}
<label for="token">API token (B24HUB_MONITOR_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button>
</form></body></html>`))

// LoginPage renders the sign-in form, with msg as an error when not empty.
func LoginPage(msg string) []byte {
	var b bytes.Buffer
	_ = login.Execute(&b, msg)
	return b.Bytes()
}
